package io.omai.agent.schedapi;

import io.omai.agent.tenancy.GpuCapacity;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * One physical GPU shared through milli-GPUs, as the allocation ledger sees it: identity and size from NVML,
 * attributes and tags from NVML merged with the configuration (see {@link DeviceAttributeOverlay}), and what the
 * allocated containers hold. Reservations are not included; the scheduler API adds them.
 *
 * @param numaNode -1 when unknown
 * @param attributes free-form; the key {@code class} (e.g. train, infer) is what expressions see as
 *     {@code device.class}
 * @param tenants tenants of the allocated containers on this GPU
 * @param pciAddress the GPU's PCI function, e.g. 0000:17:00.0; empty when unknown
 * @param pcieSwitch the PCIe switch it sits under (see {@link PciePlace}); empty when unknown
 */
public record GpuSnapshot(
        String uuid,
        int index,
        String model,
        long memoryBytes,
        int milliCapacity,
        int milliAllocated,
        long memoryAllocatedBytes,
        DeviceHealth health,
        int numaNode,
        Map<String, String> attributes,
        Set<String> tags,
        Set<String> tenants,
        String pciAddress,
        String pcieSwitch)
        implements GpuCapacity {
    public static final String CLASS_ATTRIBUTE = "class";

    /** A GPU whose PCIe place is unknown. */
    public GpuSnapshot(
            String uuid,
            int index,
            String model,
            long memoryBytes,
            int milliCapacity,
            int milliAllocated,
            long memoryAllocatedBytes,
            DeviceHealth health,
            int numaNode,
            Map<String, String> attributes,
            Set<String> tags,
            Set<String> tenants) {
        this(
                uuid,
                index,
                model,
                memoryBytes,
                milliCapacity,
                milliAllocated,
                memoryAllocatedBytes,
                health,
                numaNode,
                attributes,
                tags,
                tenants,
                "",
                "");
    }

    public GpuSnapshot {
        Objects.requireNonNull(uuid, "uuid");
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(health, "health");
        attributes = Map.copyOf(attributes);
        tags = Set.copyOf(tags);
        tenants = Set.copyOf(tenants);
        Objects.requireNonNull(pciAddress, "pciAddress");
        Objects.requireNonNull(pcieSwitch, "pcieSwitch");
        if (memoryBytes < 0 || milliCapacity < 0 || milliAllocated < 0 || memoryAllocatedBytes < 0) {
            throw new IllegalArgumentException("GPU " + uuid + ": negative size or allocation");
        }
    }

    @Override
    public boolean healthy() {
        return health.healthy();
    }

    /** The configured class, or empty. */
    public String deviceClass() {
        return attributes.getOrDefault(CLASS_ATTRIBUTE, "");
    }

    public GpuSnapshot withAllocation(int milli, long memoryBytes, Set<String> tenantsNow) {
        return new GpuSnapshot(
                uuid,
                index,
                model,
                this.memoryBytes,
                milliCapacity,
                milli,
                memoryBytes,
                health,
                numaNode,
                attributes,
                tags,
                tenantsNow,
                pciAddress,
                pcieSwitch);
    }

    public GpuSnapshot withHealth(DeviceHealth healthNow) {
        return new GpuSnapshot(
                uuid,
                index,
                model,
                memoryBytes,
                milliCapacity,
                milliAllocated,
                memoryAllocatedBytes,
                healthNow,
                numaNode,
                attributes,
                tags,
                tenants,
                pciAddress,
                pcieSwitch);
    }

    public GpuSnapshot withLabels(Map<String, String> attributesNow, Set<String> tagsNow) {
        return new GpuSnapshot(
                uuid,
                index,
                model,
                memoryBytes,
                milliCapacity,
                milliAllocated,
                memoryAllocatedBytes,
                health,
                numaNode,
                attributesNow,
                tagsNow,
                tenants,
                pciAddress,
                pcieSwitch);
    }

    public GpuSnapshot withPcie(String pciAddressNow, String pcieSwitchNow) {
        return new GpuSnapshot(
                uuid,
                index,
                model,
                memoryBytes,
                milliCapacity,
                milliAllocated,
                memoryAllocatedBytes,
                health,
                numaNode,
                attributes,
                tags,
                tenants,
                pciAddressNow,
                pcieSwitchNow);
    }
}
