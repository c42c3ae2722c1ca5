package io.omai.agent.deviceplugin;

import io.omai.agent.config.AgentConfig;
import io.omai.agent.deviceplugin.v1beta1.CDIDevice;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateResponse;
import io.omai.agent.deviceplugin.v1beta1.DeviceSpec;
import io.omai.agent.deviceplugin.v1beta1.Mount;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.quota.shm.AllocationFiles;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;

/**
 * What a container needs to run under the shim with its share: the Allocate response (env, mounts, device specs
 * or CDI names). GPUs are named explicitly, never {@code NVIDIA_VISIBLE_DEVICES=all}. The shim reaches the
 * container through a read-only {@code /etc/ld.so.preload} (harder to shed than {@code LD_PRELOAD}).
 */
public final class ContainerEdits {
    public static final String CONTAINER_CONTROL_FILE = "/run/omai/control";
    public static final String CONTAINER_USAGE_FILE = "/run/omai/usage";
    public static final String CONTAINER_LD_SO_PRELOAD = "/etc/ld.so.preload";
    /** The host file, in the state directory, mounted at {@code /etc/ld.so.preload}. */
    public static final String HOST_PRELOAD_FILE = "ld.so.preload";

    public static final String ENV_CONTROL_FILE = "OMAI_CONTROL_FILE";
    public static final String ENV_USAGE_FILE = "OMAI_USAGE_FILE";
    public static final String ENV_ALLOCATION_ID = "OMAI_ALLOCATION_ID";
    public static final String ENV_NVIDIA_VISIBLE_DEVICES = "NVIDIA_VISIBLE_DEVICES";
    public static final String ENV_CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES";
    public static final String ANNOTATION_ALLOCATION_ID = "omai.io/allocation-id";

    private static final List<String> CONTROL_DEVICES = List.of("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools");

    private final AllocationLedger ledger;
    private final AgentConfig config;
    private final Path hostPreloadFile;

    public ContainerEdits(AllocationLedger ledger, AgentConfig config) {
        this.ledger = ledger;
        this.config = config;
        this.hostPreloadFile = config.directories().state().resolve(HOST_PRELOAD_FILE);
    }

    /** Writes the host's {@code ld.so.preload} (the shim's path inside containers), atomically. */
    public void writePreloadFile() throws IOException {
        Files.createDirectories(hostPreloadFile.getParent());
        Path temp = hostPreloadFile.resolveSibling(HOST_PRELOAD_FILE + ".tmp");
        Files.writeString(temp, config.shim().containerLibrary() + "\n", StandardCharsets.US_ASCII);
        Files.move(temp, hostPreloadFile, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    public Path hostPreloadFile() {
        return hostPreloadFile;
    }

    /** The response for one container holding {@code allocation}. */
    public ContainerAllocateResponse forAllocation(Allocation allocation) {
        Path directory = ledger.directory(allocation);
        List<GpuDevice> gpus = allocation.gpuUuids().stream()
                .map(ledger::gpu)
                .sorted((a, b) -> Integer.compare(a.index(), b.index()))
                .toList();
        String uuids = String.join(",", gpus.stream().map(GpuDevice::uuid).toList());

        ContainerAllocateResponse.Builder response = ContainerAllocateResponse.newBuilder()
                .putEnvs(ENV_CONTROL_FILE, CONTAINER_CONTROL_FILE)
                .putEnvs(ENV_USAGE_FILE, CONTAINER_USAGE_FILE)
                .putEnvs(ENV_ALLOCATION_ID, allocation.id())
                .putEnvs(ENV_NVIDIA_VISIBLE_DEVICES, uuids)
                // UUIDs work whether or not the runtime hides the node's other GPUs.
                .putEnvs(ENV_CUDA_VISIBLE_DEVICES, uuids)
                .putAnnotations(ANNOTATION_ALLOCATION_ID, allocation.id())
                .addMounts(mount(
                        config.shim().containerLibrary().toString(),
                        config.shim().hostLibrary(),
                        true))
                .addMounts(mount(CONTAINER_CONTROL_FILE, directory.resolve(AllocationFiles.CONTROL), true))
                .addMounts(mount(CONTAINER_USAGE_FILE, directory.resolve(AllocationFiles.USAGE), false));
        if (config.shim().preloadFileMount()) {
            response.addMounts(mount(CONTAINER_LD_SO_PRELOAD, hostPreloadFile, true));
        }
        if (config.sharing().cdiEnabled()) {
            // The CDI spec (nvidia-ctk cdi generate --device-name-strategy=uuid) supplies the device nodes.
            for (GpuDevice gpu : gpus) {
                response.addCdiDevices(
                        CDIDevice.newBuilder().setName(config.sharing().cdiKind() + "=" + gpu.uuid()));
            }
        } else {
            Path dev = config.directories().devRoot();
            for (GpuDevice gpu : gpus) {
                response.addDevices(
                        device("/dev/nvidia" + gpu.minorNumber(), dev.resolve("nvidia" + gpu.minorNumber())));
            }
            for (String control : CONTROL_DEVICES) {
                response.addDevices(device("/dev/" + control, dev.resolve(control)));
            }
        }
        return response.build();
    }

    private static Mount mount(String containerPath, Path hostPath, boolean readOnly) {
        return Mount.newBuilder()
                .setContainerPath(containerPath)
                .setHostPath(hostPath.toString())
                .setReadOnly(readOnly)
                .build();
    }

    private static DeviceSpec device(String containerPath, Path hostPath) {
        return DeviceSpec.newBuilder()
                .setContainerPath(containerPath)
                .setHostPath(hostPath.toString())
                .setPermissions("rw")
                .build();
    }
}
