package io.omai.simulator.kubelet;

/**
 * One Register call the simulated kubelet accepted.
 *
 * @param resourceName the extended resource
 * @param endpoint the plugin's socket file name in the device-plugin directory
 * @param kubeletGeneration which kubelet instance (0 = first start, +1 per {@link KubeletSimulator#restart})
 * @param nanosSinceKubeletStart time from this kubelet instance creating kubelet.sock to the Register call
 */
public record Registration(String resourceName, String endpoint, int kubeletGeneration, long nanosSinceKubeletStart) {}
