package io.omai.agent.dra;

/**
 * Where devices sit in the PCIe tree, as the composition root reads it (the NVIDIA driver's GPU list and sysfs), so
 * the slices can carry {@code pciBusID} and the standard {@code resource.kubernetes.io/pcieRoot}.
 */
public interface DevicePlaces {
    /** Nothing known: the attributes are left out. */
    DevicePlaces UNKNOWN = new DevicePlaces() {
        @Override
        public String pciBusId(String gpuUuid) {
            return "";
        }

        @Override
        public String pcieRoot(String pciAddress) {
            return "";
        }
    };

    /** The GPU's PCI address (e.g. {@code 0000:3b:00.0}); empty when unknown. */
    String pciBusId(String gpuUuid);

    /** The PCIe root complex of the function at {@code pciAddress} (e.g. {@code pci0000:38}); empty when unknown. */
    String pcieRoot(String pciAddress);
}
