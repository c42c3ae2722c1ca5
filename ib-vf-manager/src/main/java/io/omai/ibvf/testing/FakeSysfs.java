package io.omai.ibvf.testing;

import io.omai.ibvf.kernel.FileSysfs;
import io.omai.ibvf.kernel.VfLinkState;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.LinkLayer;
import io.omai.ibvf.model.PciAddress;
import io.omai.ibvf.model.PortState;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A fake {@code /sys} made of real files and symlinks in a directory, laid out like a node with mlx5 HCAs
 * (see docs/ib.md and the shared ib-sriov reference, section I). The root of the tree stands for {@code /sys}.
 *
 * <p>Fixture vocabulary: {@link #connectX6Ib(int, int)}, {@link #connectX6Eth(int, int)}, {@link #gpuBeside(FakePf)},
 * {@link #gpuOnOwnHostBridge(int)}, {@link #softRoce()}. Each PF sits behind its own PCIe switch; the first IB PF lands at
 * {@code 0000:3b:00.0} under {@code pci0000:38}, like the reference tree. Kernel behaviour (errno, VF creation on
 * {@code sriov_numvfs} writes, rebinds) is {@link FakeKernel}'s job; this class only knows the layout.
 */
public final class FakeSysfs {

    static final String DRIVER = "mlx5_core";
    private static final String DRIVER_DIR = "bus/pci/drivers/" + DRIVER;

    private final Path root;
    private final List<FakePf> pfs = new ArrayList<>();
    /** Every PF and VF by address: which PF it belongs to and its VF index (-1 for the PF itself). */
    private final Map<PciAddress, FakeFunction> functions = new LinkedHashMap<>();

    private int nextHostBridge = 0x38;
    private int nextSeparateGpuBridge = 0xb0;

    record FakeFunction(FakePf pf, int vfIndex, String directory) {
        boolean isPf() {
            return vfIndex < 0;
        }
    }

    private FakeSysfs(Path root) {
        this.root = root;
        mkdirs("bus/pci/devices");
        writeFile(DRIVER_DIR + "/bind", "");
        writeFile(DRIVER_DIR + "/unbind", "");
        writeFile("class/infiniband_verbs/abi_version", "6");
        writeFile("class/infiniband_mad/abi_version", "5");
        mkdirs("class/infiniband");
        mkdirs("class/net");
        writeFile("class/misc/rdma_cm/dev", "10:58");
        writeFile("module/ib_core/parameters/netns_mode", "Y");
    }

    /** An empty node (no devices yet) whose tree lives in {@code root}, which stands for {@code /sys}. */
    public static FakeSysfs create(Path root) {
        return new FakeSysfs(root);
    }

    public Path root() {
        return root;
    }

    /** Plain file access to the tree, without kernel behaviour. */
    public FileSysfs files() {
        return new FileSysfs(root);
    }

    public List<FakePf> pfs() {
        return List.copyOf(pfs);
    }

    /** A ConnectX-6 PF in InfiniBand mode ({@code class 0x020700}), driver bound, port ACTIVE, no VFs enabled. */
    public FakePf connectX6Ib(int numaNode, int totalVfs) {
        return addPf(LinkLayer.INFINIBAND, numaNode, totalVfs, false);
    }

    /** As {@link #connectX6Ib} but with MLNX_OFED's per-VF {@code sriov/<n>/{node,port,policy}} files. */
    public FakePf connectX6IbMlnxOfed(int numaNode, int totalVfs) {
        return addPf(LinkLayer.INFINIBAND, numaNode, totalVfs, true);
    }

    /** A ConnectX-6 PF in Ethernet (RoCE) mode ({@code class 0x020000}), driver bound, no VFs enabled. */
    public FakePf connectX6Eth(int numaNode, int totalVfs) {
        return addPf(LinkLayer.ETHERNET, numaNode, totalVfs, false);
    }

    /**
     * A soft-RoCE device {@code rxe0} (not a PCI function, under {@code devices/virtual}) that takes the lowest free
     * {@code uverbs}/{@code umad} numbers. Call it before adding HCAs and every {@code mlx5_K} then gets
     * {@code uverbs(K+1)}: code that infers the verbs node from the RDMA device name fails, as it would on real nodes.
     */
    public void softRoce() {
        String dir = "devices/virtual/infiniband/rxe0";
        writeFile(dir + "/node_type", "1: CA");
        writeFile(dir + "/ports/1/link_layer", "Ethernet");
        writeFile(dir + "/ports/1/state", PortState.ACTIVE.sysfsText());
        symlink("class/infiniband/rxe0", dir);
        int verbs = lowestFree("class/infiniband_verbs", "uverbs");
        writeFile("devices/virtual/infiniband_verbs/uverbs" + verbs + "/ibdev", "rxe0");
        symlink("class/infiniband_verbs/uverbs" + verbs, "devices/virtual/infiniband_verbs/uverbs" + verbs);
        int mad = lowestFree("class/infiniband_mad", "umad");
        writeFile("devices/virtual/infiniband_mad/umad" + mad + "/ibdev", "rxe0");
        symlink("class/infiniband_mad/umad" + mad, "devices/virtual/infiniband_mad/umad" + mad);
        symlink("class/infiniband_mad/issm" + mad, "devices/virtual/infiniband_mad/umad" + mad);
    }

    /** A GPU on the sibling downstream port of {@code pf}'s PCIe switch (an {@code nvidia-smi topo} PIX pair). */
    public PciAddress gpuBeside(FakePf pf) {
        int hostBus = pf.address().bus() - 3;
        String switchDown =
                "devices/pci0000:%02x/0000:%02x:01.0/0000:%02x:00.0".formatted(hostBus, hostBus, hostBus + 1)
                        + "/0000:%02x:01.0".formatted(hostBus + 2);
        return addGpu(switchDown, PciAddress.of("0000:%02x:00.0".formatted(hostBus + 4)), pf.numaNode());
    }

    /** A GPU under its own host bridge, sharing no PCIe switch with any HCA. */
    public PciAddress gpuOnOwnHostBridge(int numaNode) {
        int bus = nextSeparateGpuBridge;
        nextSeparateGpuBridge += 0x10;
        String rootPort = "devices/pci0000:%02x/0000:%02x:01.0".formatted(bus, bus);
        return addGpu(rootPort, PciAddress.of("0000:%02x:00.0".formatted(bus + 1)), numaNode);
    }

    // ----- raw access, for tests that corrupt the tree on purpose -----

    public void writeFile(String path, String content) {
        Path file = root.resolve(path);
        try {
            Files.createDirectories(file.getParent());
            Files.writeString(file, content + "\n", StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public void delete(String path) {
        Path target = root.resolve(path);
        try {
            if (Files.isSymbolicLink(target) || Files.isRegularFile(target)) {
                Files.delete(target);
                return;
            }
            if (!Files.exists(target)) {
                return;
            }
            Files.walkFileTree(target, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                    Files.delete(file);
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult postVisitDirectory(Path dir, IOException exc) throws IOException {
                    Files.delete(dir);
                    return FileVisitResult.CONTINUE;
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public String pciDevicePath(PciAddress address) {
        return "bus/pci/devices/" + address;
    }

    // ----- layout primitives used by FakeKernel -----

    Optional<FakeFunction> function(PciAddress address) {
        return Optional.ofNullable(functions.get(address));
    }

    Optional<FakeFunction> functionByDirectory(String canonicalDirectory) {
        return functions.values().stream()
                .filter(f -> f.directory().equals(canonicalDirectory))
                .findFirst();
    }

    Optional<FakePf> pfByNetdev(String netdev) {
        return pfs.stream().filter(pf -> pf.netdev().equals(netdev)).findFirst();
    }

    String readFile(String path) {
        try {
            return Files.readString(root.resolve(path), StandardCharsets.UTF_8).strip();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    boolean isBound(PciAddress address) {
        return Files.isSymbolicLink(root.resolve(functions.get(address).directory() + "/driver"));
    }

    int enabledVfs(FakePf pf) {
        return Integer.parseInt(readFile(pf.directory() + "/sriov_numvfs"));
    }

    PortState pfPortState(FakePf pf) {
        String rdma = onlyEntry(pf.directory() + "/infiniband").orElseThrow();
        return PortState.fromSysfs(readFile(pf.directory() + "/infiniband/" + rdma + "/ports/1/state"))
                .orElseThrow();
    }

    void createVfs(FakePf pf, int count) {
        boolean autoprobe =
                readFile(pf.directory() + "/sriov_drivers_autoprobe").equals("1");
        for (int index = 0; index < count; index++) {
            PciAddress vf = pf.vfAddress(index);
            String dir = pf.parentDirectory() + "/" + vf;
            writeFile(dir + "/vendor", "0x15b3");
            writeFile(dir + "/device", "0x101c");
            writeFile(dir + "/class", pf.linkLayer() == LinkLayer.INFINIBAND ? "0x020700" : "0x020000");
            writeFile(dir + "/numa_node", Integer.toString(pf.numaNode()));
            symlink(dir + "/physfn", pf.directory());
            symlink(pf.directory() + "/virtfn" + index, dir);
            symlink(pciDevicePath(vf), dir);
            if (pf.hasMlnxSriovFiles()) {
                writeFile(pf.directory() + "/sriov/" + index + "/node", Guid.ZERO.toIpLinkFormat());
                writeFile(pf.directory() + "/sriov/" + index + "/port", Guid.ZERO.toIpLinkFormat());
                writeFile(pf.directory() + "/sriov/" + index + "/policy", VfLinkState.DISABLE.mlnxPolicy());
            }
            functions.put(vf, new FakeFunction(pf, index, dir));
        }
        writeFile(pf.directory() + "/sriov_numvfs", Integer.toString(count));
        if (autoprobe) {
            for (int index = 0; index < count; index++) {
                bind(pf.vfAddress(index));
            }
        }
    }

    void removeVfs(FakePf pf) {
        int count = enabledVfs(pf);
        for (int index = 0; index < count; index++) {
            PciAddress vf = pf.vfAddress(index);
            if (isBound(vf)) {
                unbind(vf);
            }
            delete(functions.get(vf).directory());
            delete(pf.directory() + "/virtfn" + index);
            delete(pciDevicePath(vf));
            delete(pf.directory() + "/sriov/" + index);
            functions.remove(vf);
        }
        writeFile(pf.directory() + "/sriov_numvfs", "0");
    }

    /** What probing the driver creates: netdev, RDMA device and its char-device class entries, lowest free numbers. */
    void bind(PciAddress address) {
        FakeFunction function = functions.get(address);
        FakePf pf = function.pf();
        String dir = function.directory();
        symlink(dir + "/driver", DRIVER_DIR);
        symlink(DRIVER_DIR + "/" + address, dir);

        String netdev = function.isPf() ? pf.netdev() : pf.vfNetdev(function.vfIndex());
        boolean ib = pf.linkLayer() == LinkLayer.INFINIBAND;
        Guid nodeGuid = function.isPf() ? pfGuid(pf) : vfNodeGuid(pf, function.vfIndex());
        Guid portGuid = function.isPf() ? nodeGuid : pf.vfPortGuids.getOrDefault(function.vfIndex(), nodeGuid);
        String netDir = dir + "/net/" + netdev;
        writeFile(netDir + "/type", ib ? "32" : "1");
        writeFile(netDir + "/operstate", function.isPf() ? "up" : "down");
        writeFile(
                netDir + "/address",
                ib
                        ? "00:00:10:87:fe:80:00:00:00:00:00:00:" + portGuid.toIpLinkFormat()
                        : "02:00:00:00:%02x:%02x".formatted(pf.address().bus(), function.vfIndex() + 1));
        symlink("class/net/" + netdev, netDir);

        String rdma = "mlx5_" + lowestFree("class/infiniband", "mlx5_");
        String rdmaDir = dir + "/infiniband/" + rdma;
        writeFile(rdmaDir + "/node_guid", nodeGuid.toSysfsFormat());
        writeFile(rdmaDir + "/sys_image_guid", pfGuid(pf).toSysfsFormat());
        writeFile(rdmaDir + "/node_type", "1: CA");
        writeFile(rdmaDir + "/hca_type", function.isPf() ? "MT4123" : "MT4124");
        writeFile(rdmaDir + "/fw_ver", "20.39.1002");
        String port = rdmaDir + "/ports/1";
        writeFile(port + "/state", initialPortState(function).sysfsText());
        writeFile(port + "/phys_state", "5: LinkUp");
        writeFile(port + "/rate", ib ? "200 Gb/sec (4X HDR)" : "100 Gb/sec (4X EDR)");
        writeFile(port + "/link_layer", pf.linkLayer().sysfsName());
        writeFile(port + "/gids/0", "fe80:0000:0000:0000:" + portGuid.toSysfsFormat());
        writeFile(port + "/pkeys/0", "0xffff");
        symlink("class/infiniband/" + rdma, rdmaDir);

        int verbs = lowestFree("class/infiniband_verbs", "uverbs");
        String verbsDir = dir + "/infiniband_verbs/uverbs" + verbs;
        writeFile(verbsDir + "/ibdev", rdma);
        writeFile(verbsDir + "/dev", "231:" + (192 + verbs));
        writeFile(verbsDir + "/abi_version", "1");
        symlink("class/infiniband_verbs/uverbs" + verbs, verbsDir);

        int mad = lowestFree("class/infiniband_mad", "umad");
        for (String kind : List.of("umad", "issm")) {
            String madDir = dir + "/infiniband_mad/" + kind + mad;
            writeFile(madDir + "/ibdev", rdma);
            writeFile(madDir + "/port", "1");
            writeFile(madDir + "/dev", "231:" + (kind.equals("umad") ? mad : 64 + mad));
            symlink("class/infiniband_mad/" + kind + mad, madDir);
        }
    }

    void unbind(PciAddress address) {
        String dir = functions.get(address).directory();
        for (String entry : entries(dir + "/infiniband")) {
            delete("class/infiniband/" + entry);
        }
        for (String entry : entries(dir + "/infiniband_verbs")) {
            delete("class/infiniband_verbs/" + entry);
        }
        for (String entry : entries(dir + "/infiniband_mad")) {
            delete("class/infiniband_mad/" + entry);
        }
        for (String entry : entries(dir + "/net")) {
            delete("class/net/" + entry);
        }
        for (String sub : List.of("infiniband", "infiniband_verbs", "infiniband_mad", "net", "driver")) {
            delete(dir + "/" + sub);
        }
        delete(DRIVER_DIR + "/" + address);
    }

    /** The VF port follows the PF port, and the SM only activates a virtual port with a valid GUID. */
    PortState vfPortState(FakePf pf, int vfIndex, PortState pfState) {
        boolean linkAllowed = pf.configuredLinkState(vfIndex) != VfLinkState.DISABLE;
        boolean guidOk = pf.linkLayer() == LinkLayer.ETHERNET
                || visibleNodeGuid(pf, vfIndex).isAssignable();
        return pfState == PortState.ACTIVE && linkAllowed && guidOk ? PortState.ACTIVE : PortState.DOWN;
    }

    void setPortStateOf(PciAddress address, PortState state) {
        String dir = functions.get(address).directory();
        for (String rdma : entries(dir + "/infiniband")) {
            writeFile(dir + "/infiniband/" + rdma + "/ports/1/state", state.sysfsText());
        }
    }

    List<String> entries(String directory) {
        Path dir = root.resolve(directory);
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        try (var stream = Files.list(dir)) {
            return stream.map(p -> p.getFileName().toString()).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The GUID the bound VF shows in sysfs: what the driver held at its last bind, not what was set since. */
    private Guid visibleNodeGuid(FakePf pf, int vfIndex) {
        String dir = functions.get(pf.vfAddress(vfIndex)).directory() + "/infiniband";
        return onlyEntry(dir)
                .map(rdma ->
                        Guid.parse(readFile(dir + "/" + rdma + "/node_guid")).orElseThrow())
                .orElse(Guid.ZERO);
    }

    private PortState initialPortState(FakeFunction function) {
        if (function.isPf()) {
            return PortState.ACTIVE;
        }
        return vfPortState(function.pf(), function.vfIndex(), pfPortState(function.pf()));
    }

    /** Ethernet VFs get a MAC-derived node GUID from the driver; IB VFs carry what was configured, else zero. */
    private static Guid vfNodeGuid(FakePf pf, int vfIndex) {
        if (pf.linkLayer() == LinkLayer.ETHERNET) {
            return new Guid(0x0200_00ff_fe00_0000L | ((long) pf.address().bus() << 8) | (vfIndex + 1));
        }
        return pf.configuredNodeGuid(vfIndex);
    }

    private static Guid pfGuid(FakePf pf) {
        return new Guid(0xb83f_d203_00a1_0000L | pf.address().bus());
    }

    private Optional<String> onlyEntry(String directory) {
        return entries(directory).stream().findFirst();
    }

    /** Lowest index whose name is free in a class directory, like the kernel's IDA allocators. */
    private int lowestFree(String classDirectory, String prefix) {
        List<String> taken = entries(classDirectory);
        int index = 0;
        while (taken.contains(prefix + index)) {
            index++;
        }
        return index;
    }

    private FakePf addPf(LinkLayer linkLayer, int numaNode, int totalVfs, boolean mlnxSriovFiles) {
        int host = nextHostBridge;
        nextHostBridge += 0x20;
        PciAddress address = PciAddress.of("0000:%02x:00.0".formatted(host + 3));
        String dir = "devices/pci0000:%02x/0000:%02x:01.0/0000:%02x:00.0/0000:%02x:00.0/%s"
                .formatted(host, host, host + 1, host + 2, address);
        String netdev =
                linkLayer == LinkLayer.INFINIBAND ? "ibp" + address.bus() + "s0" : "enp" + address.bus() + "s0f0np0";
        FakePf pf = new FakePf(address, linkLayer, dir, netdev, numaNode, totalVfs, mlnxSriovFiles);
        writeFile(dir + "/vendor", "0x15b3");
        writeFile(dir + "/device", "0x101b");
        writeFile(dir + "/subsystem_vendor", "0x15b3");
        writeFile(dir + "/subsystem_device", "0x0007");
        writeFile(dir + "/class", linkLayer == LinkLayer.INFINIBAND ? "0x020700" : "0x020000");
        writeFile(dir + "/numa_node", Integer.toString(numaNode));
        writeFile(dir + "/local_cpulist", "0-31");
        writeFile(dir + "/sriov_totalvfs", Integer.toString(totalVfs));
        writeFile(dir + "/sriov_numvfs", "0");
        writeFile(dir + "/sriov_offset", "1");
        writeFile(dir + "/sriov_stride", "1");
        writeFile(dir + "/sriov_vf_device", "101c");
        writeFile(dir + "/sriov_drivers_autoprobe", "1");
        symlink(pciDevicePath(address), dir);
        pfs.add(pf);
        functions.put(address, new FakeFunction(pf, -1, dir));
        bind(address);
        return pf;
    }

    private PciAddress addGpu(String parentDirectory, PciAddress address, int numaNode) {
        String dir = parentDirectory + "/" + address;
        writeFile(dir + "/vendor", "0x10de");
        writeFile(dir + "/class", "0x030200");
        writeFile(dir + "/numa_node", Integer.toString(numaNode));
        symlink(pciDevicePath(address), dir);
        return address;
    }

    private void mkdirs(String path) {
        try {
            Files.createDirectories(root.resolve(path));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A relative symlink, as sysfs uses, so the tree could be moved without breaking. */
    private void symlink(String link, String target) {
        Path linkPath = root.resolve(link);
        try {
            Files.createDirectories(linkPath.getParent());
            Files.deleteIfExists(linkPath);
            Files.createSymbolicLink(linkPath, linkPath.getParent().relativize(root.resolve(target)));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
