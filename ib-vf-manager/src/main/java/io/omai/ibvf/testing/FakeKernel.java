package io.omai.ibvf.testing;

import io.omai.ibvf.error.Errno;
import io.omai.ibvf.kernel.FileSysfs;
import io.omai.ibvf.kernel.IpLink;
import io.omai.ibvf.kernel.KernelErrors;
import io.omai.ibvf.kernel.Sysfs;
import io.omai.ibvf.kernel.TxRate;
import io.omai.ibvf.kernel.VfLinkState;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.LinkLayer;
import io.omai.ibvf.model.PciAddress;
import io.omai.ibvf.model.PortState;
import io.omai.ibvf.testing.FakeSysfs.FakeFunction;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Optional;

/**
 * The kernel behind a {@link FakeSysfs}: implements {@link Sysfs} and {@link IpLink} over the fake tree and applies
 * what plain files cannot. Writes to {@code sriov_numvfs} follow {@code drivers/pci/iov.c} (EINVAL, ENOENT without a
 * driver, ERANGE above totalvfs, EBUSY when changing a non-zero count, VFs created/removed); driver bind/unbind
 * recreate the RDMA device and renumber {@code uverbsN}; VF GUIDs set through {@code ip link} (or MLNX_OFED's files)
 * only show after a rebind; a driver reload wipes VFs and GUIDs. Failures are built through {@link KernelErrors},
 * the same mapping the real implementations use.
 */
public final class FakeKernel implements Sysfs, IpLink {

    private static final int MAX_U16 = 0xffff;

    private final FakeSysfs tree;
    private final FileSysfs files;
    private final List<String> writeLog = Collections.synchronizedList(new ArrayList<>());
    private final List<String> ipLinkLog = Collections.synchronizedList(new ArrayList<>());

    public FakeKernel(FakeSysfs tree) {
        this.tree = tree;
        this.files = tree.files();
    }

    public FakeSysfs tree() {
        return tree;
    }

    // ----- Sysfs -----

    @Override
    public Optional<String> read(String path) {
        return files.read(path);
    }

    @Override
    public List<String> list(String directory) {
        return files.list(directory);
    }

    @Override
    public boolean exists(String path) {
        return files.exists(path);
    }

    @Override
    public Optional<String> linkTargetName(String path) {
        return files.linkTargetName(path);
    }

    @Override
    public String canonicalPath(String path) {
        return files.canonicalPath(path);
    }

    @Override
    public synchronized void write(String path, String value) {
        writeLog.add(path + "=" + value);
        int slash = path.lastIndexOf('/');
        String attribute = path.substring(slash + 1);
        String directory = path.substring(0, slash);
        if (directory.startsWith("bus/pci/drivers/") && (attribute.equals("bind") || attribute.equals("unbind"))) {
            bindOrUnbind(path, attribute.equals("bind"), value);
            return;
        }
        if (attribute.equals("sriov_numvfs")) {
            Optional<FakeFunction> function = files.exists(directory)
                    ? tree.functionByDirectory(files.canonicalPath(directory))
                    : Optional.empty();
            if (function.isPresent() && function.get().isPf()) {
                writeNumVfs(path, function.get().pf(), value);
                return;
            }
        }
        if (isMlnxVfFile(directory, attribute)) {
            writeMlnxVfFile(path, directory, attribute, value);
            return;
        }
        files.write(path, value);
    }

    // ----- IpLink -----

    @Override
    public synchronized void setVfGuids(String pfNetdev, int vfIndex, Guid nodeGuid, Guid portGuid) {
        String command =
                "ip link set dev " + pfNetdev + " vf " + vfIndex + " node_guid " + nodeGuid + " port_guid " + portGuid;
        FakePf pf = pfForIpLink(command, pfNetdev, vfIndex, nodeGuid.toString());
        if (pf.linkLayer() != LinkLayer.INFINIBAND) {
            throw KernelErrors.commandFailed(
                    command, nodeGuid.toString(), "RTNETLINK answers: " + Errno.EOPNOTSUPP.strerror());
        }
        ipLinkLog.add(command);
        pf.vfNodeGuids.put(vfIndex, nodeGuid);
        pf.vfPortGuids.put(vfIndex, portGuid);
    }

    @Override
    public synchronized void setVfLinkState(String pfNetdev, int vfIndex, VfLinkState state) {
        String command = "ip link set dev " + pfNetdev + " vf " + vfIndex + " state " + state.ipLinkWord();
        FakePf pf = pfForIpLink(command, pfNetdev, vfIndex, state.ipLinkWord());
        ipLinkLog.add(command);
        pf.vfLinkStates.put(vfIndex, state);
        refreshVfPort(pf, vfIndex);
    }

    @Override
    public synchronized void setVfTxRate(String pfNetdev, int vfIndex, TxRate rate) {
        String command = "ip link set dev " + pfNetdev + " vf " + vfIndex + " max_tx_rate " + rate.maxMbps()
                + " min_tx_rate " + rate.minMbps();
        String value = rate.maxMbps() + "/" + rate.minMbps();
        FakePf pf = pfForIpLink(command, pfNetdev, vfIndex, value);
        if (pf.linkLayer() != LinkLayer.ETHERNET) {
            // the IPoIB PF netdev has no ndo_set_vf_rate
            throw KernelErrors.commandFailed(command, value, "RTNETLINK answers: " + Errno.EOPNOTSUPP.strerror());
        }
        ipLinkLog.add(command);
        pf.vfTxRates.put(vfIndex, rate);
    }

    // ----- events a test triggers on the "hardware" -----

    /** Reloads the PF driver (modprobe -r/-i, devlink reload, firmware reset): VFs vanish and VF GUIDs are forgotten. */
    public synchronized void reloadDriver(FakePf pf) {
        tree.removeVfs(pf);
        pf.forgetDriverMemory();
        tree.unbind(pf.address());
        tree.bind(pf.address());
    }

    /** The PF's IB port goes to {@code state} (cable pulled, SM gone...); VF virtual ports follow it. */
    public synchronized void setPfPortState(FakePf pf, PortState state) {
        tree.setPortStateOf(pf.address(), state);
        for (int index = 0; index < tree.enabledVfs(pf); index++) {
            refreshVfPort(pf, index);
        }
    }

    /** Toggles {@code sriov_drivers_autoprobe}; with 0, new VFs appear without a driver. */
    public void setDriversAutoprobe(FakePf pf, boolean autoprobe) {
        tree.writeFile(pf.directory() + "/sriov_drivers_autoprobe", autoprobe ? "1" : "0");
    }

    /** Every sysfs write seen, as {@code path=value}, in order. */
    public List<String> writeLog() {
        return List.copyOf(writeLog);
    }

    /** Every accepted {@code ip link} request, as a command line. */
    public List<String> ipLinkLog() {
        return List.copyOf(ipLinkLog);
    }

    public void clearLogs() {
        writeLog.clear();
        ipLinkLog.clear();
    }

    // ----- kernel behaviour -----

    private void writeNumVfs(String path, FakePf pf, String value) {
        int requested;
        try {
            requested = Integer.parseInt(value.strip());
        } catch (NumberFormatException notANumber) {
            throw KernelErrors.of(Errno.EINVAL, path, value);
        }
        if (requested < 0 || requested > MAX_U16) {
            throw KernelErrors.of(requested < 0 ? Errno.EINVAL : Errno.ERANGE, path, value);
        }
        if (!tree.isBound(pf.address())) {
            throw KernelErrors.of(Errno.ENOENT, path, value);
        }
        int current = tree.enabledVfs(pf);
        if (requested == current) {
            return;
        }
        if (requested == 0) {
            tree.removeVfs(pf);
            return;
        }
        if (requested > pf.totalVfs()) {
            throw KernelErrors.of(Errno.ERANGE, path, value);
        }
        if (current != 0) {
            throw KernelErrors.of(Errno.EBUSY, path, value);
        }
        tree.createVfs(pf, requested);
    }

    private void bindOrUnbind(String path, boolean bind, String value) {
        String address = value.strip();
        Optional<FakeFunction> function =
                PciAddress.isPciAddress(address) ? tree.function(PciAddress.of(address)) : Optional.empty();
        if (function.isEmpty()) {
            throw KernelErrors.of(Errno.ENODEV, path, value);
        }
        PciAddress pci = PciAddress.of(address);
        boolean bound = tree.isBound(pci);
        if (bind && bound) {
            throw KernelErrors.of(Errno.EBUSY, path, value);
        }
        if (!bind && !bound) {
            throw KernelErrors.of(Errno.ENODEV, path, value);
        }
        if (bind) {
            tree.bind(pci);
        } else {
            tree.unbind(pci);
        }
    }

    private boolean isMlnxVfFile(String directory, String attribute) {
        return (attribute.equals("node") || attribute.equals("port") || attribute.equals("policy"))
                && directory.matches(".*/sriov/\\d+")
                && files.exists(directory);
    }

    private void writeMlnxVfFile(String path, String directory, String attribute, String value) {
        String pfDirectory = files.canonicalPath(directory.substring(0, directory.lastIndexOf("/sriov/")));
        FakePf pf = tree.functionByDirectory(pfDirectory).orElseThrow().pf();
        int vfIndex = Integer.parseInt(directory.substring(directory.lastIndexOf('/') + 1));
        switch (attribute) {
            case "node", "port" -> {
                Guid guid = Guid.parse(value).orElseThrow(() -> KernelErrors.of(Errno.EINVAL, path, value));
                (attribute.equals("node") ? pf.vfNodeGuids : pf.vfPortGuids).put(vfIndex, guid);
                files.write(path, guid.toIpLinkFormat());
            }
            default -> {
                VfLinkState state = Arrays.stream(VfLinkState.values())
                        .filter(s -> s.mlnxPolicy().equals(value.strip()))
                        .findFirst()
                        .orElseThrow(() -> KernelErrors.of(Errno.EINVAL, path, value));
                pf.vfLinkStates.put(vfIndex, state);
                files.write(path, state.mlnxPolicy());
                refreshVfPort(pf, vfIndex);
            }
        }
    }

    private FakePf pfForIpLink(String command, String pfNetdev, int vfIndex, String value) {
        FakePf pf = tree.pfByNetdev(pfNetdev)
                .orElseThrow(
                        () -> KernelErrors.commandFailed(command, value, "Cannot find device \"" + pfNetdev + "\""));
        if (vfIndex < 0 || vfIndex >= tree.enabledVfs(pf)) {
            throw KernelErrors.commandFailed(command, value, "RTNETLINK answers: " + Errno.EINVAL.strerror());
        }
        return pf;
    }

    /** Link policy changes apply at once on the vport; GUID changes do not (they need a rebind). */
    private void refreshVfPort(FakePf pf, int vfIndex) {
        PciAddress vf = pf.vfAddress(vfIndex);
        if (tree.function(vf).isPresent() && tree.isBound(vf)) {
            tree.setPortStateOf(vf, tree.vfPortState(pf, vfIndex, tree.pfPortState(pf)));
        }
    }
}
