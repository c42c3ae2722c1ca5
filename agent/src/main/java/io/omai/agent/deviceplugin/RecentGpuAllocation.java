package io.omai.agent.deviceplugin;

import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.ibvf.alloc.GpuPlacement;
import io.omai.ibvf.model.PciAddress;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.function.Predicate;
import java.util.stream.Stream;

/**
 * Pairs a VF request with the milli-GPU allocation the ledger made just before it. kubelet admits one pod at a time
 * and allocates a container's resources back to back (GetPreferredAllocation then Allocate, per resource, in map
 * order), so when the GPU side came first its allocation is the newest one and only milliseconds old. When the VF
 * side comes first, or the newest allocation is older than {@code window}, the pairing is unknown. A wrong guess
 * costs placement quality, never correctness: the answer is only a hint.
 *
 * <p>A GPU's PCI address comes from the NVIDIA driver's {@code /proc/driver/nvidia/gpus/<BDF>/information} (its
 * {@code GPU UUID:} line); without it the GPU is known by the NUMA node NVML reported, if any.
 */
public final class RecentGpuAllocation implements GpuPairing {
    public static final Path NVIDIA_GPUS = Path.of("/proc/driver/nvidia/gpus");
    public static final Duration WINDOW = Duration.ofSeconds(2);

    private final AllocationLedger ledger;
    private final Path nvidiaGpus;
    private final Predicate<PciAddress> inSysfs;
    private final Clock clock;
    private final Duration window;

    public RecentGpuAllocation(
            AllocationLedger ledger, Path nvidiaGpus, Predicate<PciAddress> inSysfs, Clock clock, Duration window) {
        this.ledger = ledger;
        this.nvidiaGpus = nvidiaGpus;
        this.inSysfs = inSysfs;
        this.clock = clock;
        this.window = window;
    }

    @Override
    public List<GpuPlacement> gpusOfContainerBeingAdmitted() {
        Instant since = clock.instant().minus(window);
        Optional<Allocation> newest = ledger.allocations().stream().max(Comparator.comparing(Allocation::createdAt));
        if (newest.isEmpty() || newest.get().createdAt().isBefore(since)) {
            return List.of();
        }
        List<GpuPlacement> placements = new ArrayList<>();
        for (String uuid : newest.get().gpuUuids()) {
            GpuDevice gpu = ledger.gpu(uuid);
            OptionalInt numa = gpu != null && gpu.hasNumaNode() ? OptionalInt.of(gpu.numaNode()) : OptionalInt.empty();
            Optional<PciAddress> address = pciAddress(nvidiaGpus, uuid).filter(inSysfs);
            if (address.isPresent() || numa.isPresent()) {
                placements.add(new GpuPlacement(address, numa));
            }
        }
        return placements;
    }

    /**
     * The GPU's PCI address as the NVIDIA driver lists it under {@code nvidiaGpus} (normally {@link #NVIDIA_GPUS}),
     * if this host has the driver's proc files.
     */
    public static Optional<PciAddress> pciAddress(Path nvidiaGpus, String uuid) {
        if (!Files.isDirectory(nvidiaGpus)) {
            return Optional.empty();
        }
        try (Stream<Path> gpus = Files.list(nvidiaGpus)) {
            for (Path gpu : gpus.toList()) {
                String name = gpu.getFileName().toString().toLowerCase(java.util.Locale.ROOT);
                if (PciAddress.isPciAddress(name) && holdsUuid(gpu.resolve("information"), uuid)) {
                    return Optional.of(PciAddress.of(name));
                }
            }
        } catch (IOException e) {
            return Optional.empty(); // a hint only: fall back to NUMA
        }
        return Optional.empty();
    }

    private static boolean holdsUuid(Path information, String uuid) {
        try {
            for (String line : Files.readAllLines(information)) {
                int colon = line.indexOf(':');
                if (colon > 0
                        && line.substring(0, colon).strip().equals("GPU UUID")
                        && line.substring(colon + 1).strip().equals(uuid)) {
                    return true;
                }
            }
        } catch (IOException e) {
            return false;
        }
        return false;
    }
}
