package io.omai.agent.schedapi;

import io.omai.agent.schedapi.v1.Device;
import io.omai.placement.GpuState;

/** Builds the {@code device} that resource expressions see from a GPU and its current load (placement's view). */
final class DeviceViews {
    private DeviceViews() {}

    static Device of(GpuSnapshot gpu, GpuState usage) {
        return Device.newBuilder()
                .setUuid(gpu.uuid())
                .setIndex(gpu.index())
                .setModel(gpu.model())
                .setMemory(gpu.memoryBytes())
                .setClass_(gpu.deviceClass())
                .setNuma(gpu.numaNode())
                .addAllTags(gpu.tags().stream().sorted().toList())
                .setMilliCapacity(gpu.milliCapacity())
                .setMilliFree(usage.milliFree())
                .setMemoryFree(usage.memoryFreeBytes())
                .putAllAttributes(gpu.attributes())
                .build();
    }
}
