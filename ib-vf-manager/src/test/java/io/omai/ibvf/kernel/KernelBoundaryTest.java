package io.omai.ibvf.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.ibvf.error.Errno;
import io.omai.ibvf.error.KernelRejectedException;
import io.omai.ibvf.error.SysfsMissingException;
import io.omai.ibvf.model.Guid;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class KernelBoundaryTest {

    @TempDir
    Path dir;

    @Test
    void writeFailures_mapFromTheStrerrorTextJavaReports() {
        String path = "bus/pci/devices/0000:3b:00.0/sriov_numvfs";

        assertThat(KernelErrors.writeFailed(path, "8", new IOException("Device or resource busy")))
                .isInstanceOfSatisfying(KernelRejectedException.class, e -> {
                    assertThat(e.errno()).isEqualTo(Errno.EBUSY);
                    assertThat(e).hasMessageContaining(path).hasMessageContaining("'8'");
                });
        assertThat(KernelErrors.writeFailed(path, "99", new IOException("Numerical result out of range")))
                .isInstanceOfSatisfying(
                        KernelRejectedException.class,
                        e -> assertThat(e.errno()).isEqualTo(Errno.ERANGE));
        assertThat(KernelErrors.writeFailed(path, "8", new NoSuchFileException(path)))
                .isInstanceOf(SysfsMissingException.class)
                .hasMessageContaining(path);
        assertThat(KernelErrors.writeFailed(path, "8", new IOException("something odd")))
                .isInstanceOfSatisfying(KernelRejectedException.class, e -> {
                    assertThat(e.errno()).isEqualTo(Errno.UNKNOWN);
                    assertThat(e).hasMessageContaining("something odd");
                });
        assertThat(KernelErrors.commandFailed(
                                "ip link set dev ib9 vf 0 state auto", "auto", "Cannot find device \"ib9\"\n")
                        .errno())
                .isEqualTo(Errno.ENODEV);
    }

    @Test
    void fileSysfs_trimsReads_reportsAbsenceAsEmpty_andMissingWriteTargetsAsTyped() throws IOException {
        Files.createDirectories(dir.resolve("bus/pci/devices/x"));
        Files.writeString(dir.resolve("bus/pci/devices/x/numa_node"), "1\n");
        FileSysfs sysfs = new FileSysfs(dir);

        assertThat(sysfs.read("bus/pci/devices/x/numa_node")).contains("1");
        assertThat(sysfs.read("bus/pci/devices/x/absent")).isEmpty();
        assertThat(sysfs.list("bus/pci/devices/x/absent")).isEmpty();
        assertThatThrownBy(() -> sysfs.write("bus/pci/devices/x/absent", "1"))
                .isInstanceOf(SysfsMissingException.class)
                .hasMessageContaining("bus/pci/devices/x/absent");
        assertThatThrownBy(() -> sysfs.read("../etc/passwd")).isInstanceOf(IllegalArgumentException.class);

        sysfs.write("bus/pci/devices/x/numa_node", "0");
        assertThat(sysfs.read("bus/pci/devices/x/numa_node")).contains("0");
    }

    @Test
    void processIpLink_runsTheDocumentedCommand_andMapsItsStderr() throws IOException {
        Path log = dir.resolve("args");
        Path ip = fakeIp(
                "echo \"$@\" >> " + log
                        + "\ncase \"$*\" in *max_tx_rate*) echo 'RTNETLINK answers: Operation not supported' >&2; exit 2;; esac\n");
        ProcessIpLink ipLink = new ProcessIpLink(ip.toString(), Duration.ofSeconds(30));
        Guid guid = Guid.parse("02:00:00:07:00:00:00:01").orElseThrow();

        ipLink.setVfGuids("ibp59s0", 3, guid, guid);
        ipLink.setVfLinkState("ibp59s0", 3, VfLinkState.AUTO);

        assertThat(Files.readAllLines(log))
                .containsExactly(
                        "link set dev ibp59s0 vf 3 node_guid 02:00:00:07:00:00:00:01 port_guid 02:00:00:07:00:00:00:01",
                        "link set dev ibp59s0 vf 3 state auto");
        assertThatThrownBy(() -> ipLink.setVfTxRate("ibp59s0", 3, new TxRate(1000, 0)))
                .isInstanceOfSatisfying(KernelRejectedException.class, e -> {
                    assertThat(e.errno()).isEqualTo(Errno.EOPNOTSUPP);
                    assertThat(e.target()).endsWith("link set dev ibp59s0 vf 3 max_tx_rate 1000 min_tx_rate 0");
                });
    }

    @Test
    void processIpLink_missingBinary_saysWhatToInstall() {
        ProcessIpLink ipLink = new ProcessIpLink(dir.resolve("no-such-ip").toString(), Duration.ofSeconds(5));

        assertThatThrownBy(() -> ipLink.setVfLinkState("ibp59s0", 0, VfLinkState.ENABLE))
                .isInstanceOf(KernelRejectedException.class)
                .hasMessageContaining("iproute2");
    }

    private Path fakeIp(String body) throws IOException {
        Path script = dir.resolve("ip");
        Files.writeString(script, "#!/bin/sh\n" + body);
        Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwxr-xr-x"));
        return script;
    }
}
