package io.omai.agent.node;

import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.schedapi.PciePlace;
import io.omai.ibvf.model.PciAddress;
import io.omai.ibvf.testing.FakePf;
import io.omai.ibvf.testing.FakeSysfs;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** GPUs' PCI addresses from the NVIDIA driver's proc files, and the bridge above any function from sysfs. */
class PcieLocationsTest {
    @TempDir
    Path dir;

    private void nvidiaProc(PciAddress address, String uuid) throws Exception {
        Path gpu = Files.createDirectories(dir.resolve("proc/" + address.value()));
        Files.writeString(gpu.resolve("information"), "Model: \t NVIDIA H100\nGPU UUID: \t " + uuid + "\n");
    }

    @Test
    void aGpuBesideAnHcaSharesItsSwitch() throws Exception {
        FakeSysfs tree = FakeSysfs.create(dir.resolve("sys"));
        FakePf hca = tree.connectX6Ib(0, 4);
        PciAddress beside = tree.gpuBeside(hca);
        PciAddress apart = tree.gpuOnOwnHostBridge(1);
        nvidiaProc(beside, "GPU-a");
        nvidiaProc(apart, "GPU-b");
        List<GpuDevice> gpus = List.of(
                new GpuDevice(0, "GPU-a", "H100", 0, 80L << 30, 0),
                new GpuDevice(1, "GPU-b", "H100", 1, 80L << 30, 1),
                new GpuDevice(2, "GPU-c", "H100", 2, 80L << 30, 1));

        Map<String, PciePlace> places = PcieLocations.ofGpus(gpus, dir.resolve("proc"), tree.files());

        assertThat(places.get("GPU-a").pciAddress()).isEqualTo(beside.value());
        assertThat(places.get("GPU-b").pciAddress()).isEqualTo(apart.value());
        assertThat(places.get("GPU-c")).as("not in the driver's list").isEqualTo(PciePlace.UNKNOWN);
        // the GPU sits on another downstream port of the HCA's switch: the same switch (its upstream port)
        String hcaSwitch = PcieLocations.pcieSwitch(tree.files(), hca.address());
        int hostBus = hca.address().bus() - 3;
        assertThat(hcaSwitch).isEqualTo("0000:%02x:00.0".formatted(hostBus + 1));
        assertThat(places.get("GPU-a").pcieSwitch()).isEqualTo(hcaSwitch);
        // a GPU directly under its own root port shares nothing: the root port names its place
        assertThat(places.get("GPU-b").pcieSwitch())
                .isNotEmpty()
                .isNotEqualTo(hcaSwitch)
                .endsWith(":01.0");
        assertThat(PcieLocations.pcieSwitch(tree.files(), PciAddress.of("0000:99:00.0")))
                .isEmpty();
    }

    @Test
    void theDraPlacesNameAGpusBusIdAndThePcieRootItSharesWithTheHcasVfs() throws Exception {
        FakeSysfs tree = FakeSysfs.create(dir.resolve("sys"));
        FakePf hca = tree.connectX6Ib(0, 4);
        new io.omai.ibvf.testing.FakeKernel(tree)
                .write(io.omai.ibvf.kernel.SysfsLayout.pciAttribute(hca.address(), "sriov_numvfs"), "2");
        PciAddress beside = tree.gpuBeside(hca);
        PciAddress apart = tree.gpuOnOwnHostBridge(1);
        nvidiaProc(beside, "GPU-a");
        nvidiaProc(apart, "GPU-b");
        List<GpuDevice> gpus = List.of(
                new GpuDevice(0, "GPU-a", "H100", 0, 80L << 30, 0),
                new GpuDevice(1, "GPU-b", "H100", 1, 80L << 30, 1),
                new GpuDevice(2, "GPU-c", "H100", 2, 80L << 30, 1));

        io.omai.agent.dra.DevicePlaces places = PcieLocations.forDra(gpus, dir.resolve("proc"), tree.files());

        assertThat(places.pciBusId("GPU-a")).isEqualTo(beside.value());
        assertThat(places.pciBusId("GPU-c")).as("not in the driver's list").isEmpty();
        // pci<domain>:<bus>: the host bridge's directory, as the standard attribute spells it
        String root = places.pcieRoot(beside.value());
        assertThat(root).matches("pci0000:[0-9a-f]{2}");
        assertThat(places.pcieRoot(hca.address().value())).isEqualTo(root);
        assertThat(places.pcieRoot(hca.vfAddress(1).value()))
                .as("a VF sits under its PF's root complex")
                .isEqualTo(root);
        assertThat(places.pcieRoot(apart.value()))
                .matches("pci0000:[0-9a-f]{2}")
                .isNotEqualTo(root);
        assertThat(places.pcieRoot("0000:99:00.0")).as("not in sysfs").isEmpty();
        assertThat(places.pcieRoot("not-an-address")).isEmpty();
    }
}
