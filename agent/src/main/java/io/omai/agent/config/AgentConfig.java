package io.omai.agent.config;

import java.nio.file.Path;
import java.time.Duration;

/**
 * The agent's whole configuration, as read from one YAML file by {@link ConfigLoader} (every value validated
 * there; these records only carry it). {@code docs/operations.md} lists every key with its default.
 *
 * @param nodeName the Kubernetes node this agent runs on (logs, pod lookups)
 * @param resources the extended resource names the agent advertises
 * @param directories where kubelet's sockets and the agent's state live
 * @param sharing how a milli-GPU share becomes memory and compute quotas, and how devices reach containers
 * @param shim where the CUDA shim lives on the host and in containers
 * @param nvml how NVML is loaded and GPU health is judged
 * @param kubelet registration and reconciliation timing
 * @param metrics where {@code /metrics}, {@code /healthz} and {@code /readyz} are served
 * @param tenancy tenant identity, anti-affinity, coexistence with NVIDIA's plugin and the NVML audit
 * @param schedulerApi the scheduler-facing gRPC API (node state, watch, fit, reservations)
 * @param ib the {@code omai.io/ib-vf} device plugin for InfiniBand/RoCE SR-IOV VFs
 * @param audit what the agent does when a container's usage file is found tampered with
 * @param dra the DRA kubelet plugin (ResourceSlices, NodePrepareResources, CDI specs); off by default
 */
public record AgentConfig(
        String nodeName,
        Resources resources,
        Directories directories,
        Sharing sharing,
        Shim shim,
        Nvml nvml,
        Kubelet kubelet,
        Metrics metrics,
        Tenancy tenancy,
        SchedulerApi schedulerApi,
        Ib ib,
        Audit audit,
        Dra dra) {

    /** The config format this agent reads ({@code version:} in the file). */
    public static final int VERSION = 1;

    /** @param milliGpu the resource of milli-GPU shares; 1000 per physical GPU */
    public record Resources(String milliGpu) {}

    /**
     * @param devicePlugin kubelet's device-plugin directory (holds {@code kubelet.sock} and our socket)
     * @param podResourcesSocket kubelet's PodResources socket
     * @param state the agent's own state: ledger checkpoint, allocation files, the {@code ld.so.preload} file
     * @param devRoot where the host's {@code /dev/nvidia*} nodes are (host paths of device specs)
     */
    public record Directories(Path devicePlugin, Path podResourcesSocket, Path state, Path devRoot) {}

    /**
     * @param memoryPolicy how a share's memory limit is derived
     * @param computeMode the compute mode written into new allocations
     * @param computeEnforced whether launches spend compute tokens
     * @param computePeriodUs the compute controller's grant period
     * @param cdiEnabled deliver GPUs as CDI device names instead of device specs
     * @param cdiKind the CDI kind of the GPU devices, e.g. {@code nvidia.com/gpu}; names are {@code kind=uuid}
     */
    public record Sharing(
            MemoryPolicy memoryPolicy,
            ComputePolicy computeMode,
            boolean computeEnforced,
            int computePeriodUs,
            boolean cdiEnabled,
            String cdiKind) {}

    /**
     * How a share's compute quota is enforced ({@code sharing.computeMode}); the ledger writes it into each control
     * file as the ABI's mode (configuration is a leaf and knows no ABI constant).
     */
    public enum ComputePolicy {
        /** {@code hard-cap}: never above the quota, even on an idle GPU. */
        HARD_CAP,
        /** {@code work-conserving}: may borrow idle GPU time and gives it back when others need it. */
        WORK_CONSERVING
    }

    /** How a share's memory limit is derived. */
    public enum MemoryPolicy {
        /** share/1000 of the GPU's memory. */
        PROPORTIONAL,
        /** no memory limit (compute share only). */
        UNLIMITED
    }

    /**
     * @param hostLibrary the shim on the host, bind-mounted into containers
     * @param containerLibrary where containers see it (also the content of the mounted {@code /etc/ld.so.preload})
     * @param preloadFileMount whether to mount the agent's {@code ld.so.preload} at {@code /etc/ld.so.preload}
     */
    public record Shim(Path hostLibrary, Path containerLibrary, boolean preloadFileMount) {}

    /**
     * @param library the NVML library to load ({@code libnvidia-ml.so.1} or a path)
     * @param healthChecks whether XID/NVML health checking runs at all
     * @param recoveryDebounce how long a GPU must stay free of errors before it is Healthy again
     * @param ignoredXids XIDs caused by applications, not the GPU, which never make a GPU unhealthy
     */
    public record Nvml(
            String library, boolean healthChecks, Duration recoveryDebounce, java.util.Set<Long> ignoredXids) {}

    /**
     * @param registrationBackoffMax the longest wait between failed registrations
     * @param reconcileInterval how often allocations are compared with PodResources
     * @param releaseGracePeriod an allocation younger than this is never released (kubelet records it late)
     */
    public record Kubelet(Duration registrationBackoffMax, Duration reconcileInterval, Duration releaseGracePeriod) {}

    /**
     * @param address the IP address the metrics and health server listens on ({@code 0.0.0.0}: every interface)
     * @param port its TCP port; the DaemonSet's {@code metrics} container port and probes name the same port
     */
    public record Metrics(String address, int port) {}

    /**
     * @param enabled whether the agent serves the scheduler API at all
     * @param address the IP address it listens on
     * @param port its TCP port; the DaemonSet's {@code sched-api} container port
     * @param tls mutual TLS material; {@code null} serves plaintext (development only)
     * @param allowedClients certificate identities (subject CN, DNS or URI SAN) allowed to Reserve and Release;
     *     empty only without TLS, where anyone may (the agent warns)
     * @param deviceLabels attributes and tags merged into what NVML reports, for resource expressions
     */
    public record SchedulerApi(
            boolean enabled,
            String address,
            int port,
            Tls tls,
            java.util.Set<String> allowedClients,
            java.util.List<DeviceLabels> deviceLabels,
            ReserveAuth reserveAuth,
            java.util.Set<String> reserveCallers,
            String tokenAudience,
            Duration tokenCacheTtl) {
        public SchedulerApi {
            allowedClients = java.util.Set.copyOf(allowedClients);
            deviceLabels = java.util.List.copyOf(deviceLabels);
            java.util.Objects.requireNonNull(reserveAuth, "reserveAuth");
            reserveCallers = java.util.Set.copyOf(reserveCallers);
            java.util.Objects.requireNonNull(tokenAudience, "tokenAudience");
            java.util.Objects.requireNonNull(tokenCacheTtl, "tokenCacheTtl");
        }
    }

    /**
     * Who may Reserve and Release: {@code TOKEN_REVIEW}, a service-account token (checked with a TokenReview)
     * whose user or a group is in {@code reserveCallers}, or a client certificate in {@code allowedClients} when
     * TLS is on; {@code MTLS}, client certificates only; {@code NONE}, anyone who reaches the port.
     */
    public enum ReserveAuth {
        TOKEN_REVIEW,
        MTLS,
        NONE
    }

    /** Server certificate chain and key, and the CA that signs scheduler clients' certificates. */
    public record Tls(Path certificateChain, Path privateKey, Path clientCa) {}

    /**
     * Labels for the GPUs a selector matches.
     *
     * @param selectorKind {@code all}, {@code uuid}, {@code index} or {@code model}
     * @param selectorValue the UUID, index or exact model name; empty for {@code all}
     */
    public record DeviceLabels(
            String selectorKind,
            String selectorValue,
            java.util.Map<String, String> attributes,
            java.util.Set<String> tags) {
        public DeviceLabels {
            attributes = java.util.Map.copyOf(attributes);
            tags = java.util.Set.copyOf(tags);
        }
    }

    /**
     * The VF device plugin.
     *
     * @param enabled whether the agent advertises VFs at all
     * @param resourceName the extended resource, one unit per VF
     * @param sysfsRoot where sysfs is mounted ({@code /sys}; a fake tree in tests)
     * @param guidRange this node's block of VF GUIDs; required when enabled
     * @param desiredVfs VF count per PF (PCI address); PFs not named keep their count unless
     *                   {@code desiredVfsEveryPf} is set
     * @param desiredVfsEveryPf one VF count for every managed PF, when configured as a single number
     * @param vfLinkState {@code AUTO} (follow the PF port) or {@code ENABLE}
     * @param pollInterval how often sysfs is re-read for VFs appearing, disappearing or changing health
     * @param rebindLock the node-wide lock file taken around VF rebinds (shared with a CNI plugin)
     */
    public record Ib(
            boolean enabled,
            String resourceName,
            Path sysfsRoot,
            java.util.Optional<io.omai.ibvf.guid.GuidRange> guidRange,
            java.util.Map<io.omai.ibvf.model.PciAddress, Integer> desiredVfs,
            java.util.OptionalInt desiredVfsEveryPf,
            io.omai.ibvf.kernel.VfLinkState vfLinkState,
            Duration pollInterval,
            Path rebindLock,
            java.util.List<VfResource> resources) {
        /** One resource, {@code resourceName}, offering the VFs of InfiniBand PFs only. */
        public Ib(
                boolean enabled,
                String resourceName,
                Path sysfsRoot,
                java.util.Optional<io.omai.ibvf.guid.GuidRange> guidRange,
                java.util.Map<io.omai.ibvf.model.PciAddress, Integer> desiredVfs,
                java.util.OptionalInt desiredVfsEveryPf,
                io.omai.ibvf.kernel.VfLinkState vfLinkState,
                Duration pollInterval,
                Path rebindLock) {
            this(
                    enabled,
                    resourceName,
                    sysfsRoot,
                    guidRange,
                    desiredVfs,
                    desiredVfsEveryPf,
                    vfLinkState,
                    pollInterval,
                    rebindLock,
                    java.util.List.of(VfResource.infiniband(resourceName)));
        }

        public Ib {
            desiredVfs = java.util.Map.copyOf(desiredVfs);
            resources = java.util.List.copyOf(resources);
        }

        /** The VF plugin's socket file name in the device-plugin directory. */
        public String socketName() {
            return resourceName.replace('/', '-').replace('.', '-') + ".sock";
        }
    }

    /**
     * One VF resource and the PFs whose VFs it offers, like sriov-network-device-plugin's {@code resourceList}
     * selectors: a PF is selected when it matches every non-empty set.
     *
     * @param linkTypes the PF's link layer
     * @param vendors PCI vendor IDs, 4 lower-case hex digits without 0x (e.g. 15b3)
     * @param devices PCI device IDs of the PF, same form (e.g. 101b)
     * @param pfNames the PF's netdev (e.g. ib0, ens1f0) or RDMA device name (e.g. mlx5_0)
     */
    public record VfResource(
            String name,
            java.util.Set<io.omai.ibvf.model.LinkLayer> linkTypes,
            java.util.Set<String> vendors,
            java.util.Set<String> devices,
            java.util.Set<String> pfNames) {
        public VfResource {
            java.util.Objects.requireNonNull(name, "name");
            linkTypes = java.util.Set.copyOf(linkTypes);
            vendors = java.util.Set.copyOf(vendors);
            devices = java.util.Set.copyOf(devices);
            pfNames = java.util.Set.copyOf(pfNames);
        }

        /** The default: InfiniBand PFs only, so a pod asking for InfiniBand never gets a RoCE VF. */
        public static VfResource infiniband(String name) {
            return new VfResource(
                    name,
                    java.util.Set.of(io.omai.ibvf.model.LinkLayer.INFINIBAND),
                    java.util.Set.of(),
                    java.util.Set.of(),
                    java.util.Set.of());
        }

        /**
         * Whether a PF with these properties is selected.
         *
         * @param names the PF's netdev and RDMA device names
         */
        public boolean selects(
                io.omai.ibvf.model.LinkLayer linkLayer, String vendor, String device, java.util.Set<String> names) {
            return (linkTypes.isEmpty() || linkTypes.contains(linkLayer))
                    && (vendors.isEmpty() || vendors.contains(vendor))
                    && (devices.isEmpty() || devices.contains(device))
                    && (pfNames.isEmpty() || names.stream().anyMatch(pfNames::contains));
        }

        /** The plugin's socket file name in the device-plugin directory. */
        public String socketName() {
            return name.replace('/', '-').replace('.', '-') + ".sock";
        }
    }

    /**
     * @param policy how tenants are kept apart
     * @param tenantLabel the pod label naming a pod's tenant; pods without it belong to their namespace
     * @param kubernetesApi whether to watch pods, publish the node's tenants and raise events
     * @param identifyWait how long Allocate waits for the pod informer to show the pod being admitted
     * @param gpus the GPUs this agent shares (UUIDs, or NVML indices as decimal strings); empty: all
     * @param otherGpuResource another plugin's whole-GPU resource; GPUs kubelet reports under it are withdrawn
     * @param audit what the NVML audit does with processes on shared GPUs that run without the shim or beyond
     *     their quota
     * @param auditInterval how often the audit looks
     */
    public record Tenancy(
            AntiAffinity policy,
            String tenantLabel,
            KubernetesApi kubernetesApi,
            Duration identifyWait,
            java.util.List<String> gpus,
            String otherGpuResource,
            AuditAction audit,
            Duration auditInterval) {
        public Tenancy {
            gpus = java.util.List.copyOf(gpus);
        }
    }

    /** {@code tenancy.policy}. */
    public enum AntiAffinity {
        GPU,
        NODE,
        NONE
    }

    /** {@code tenancy.kubernetesApi}: {@code auto} uses it when running in a cluster (in-cluster service env). */
    public enum KubernetesApi {
        AUTO,
        ON,
        OFF
    }

    /** {@code tenancy.audit}. */
    public enum AuditAction {
        OFF,
        REPORT,
        KILL
    }

    /** @param onTamper what follows a tampered usage file, beyond the finding (event, metric, log line) */
    public record Audit(TamperAction onTamper) {}

    /** {@code audit.onTamper}. */
    public enum TamperAction {
        /** The finding only. */
        REPORT,
        /** The allocation gets no memory and no GPU time until released or unfrozen (docs/operations.md). */
        FREEZE,
        /** SIGKILL to the allocation's processes (its live slots' and those NVML shows in the container). */
        KILL
    }

    /**
     * The DRA kubelet plugin ({@code dra:}): the same GPUs and ledger as the device plugin, offered as
     * {@code resource.k8s.io/v1} ResourceSlices with consumable capacity.
     *
     * @param enabled whether the agent registers as a DRA driver at all
     * @param driverName the driver name (ResourceSlice {@code spec.driver}, the CDI vendor), a DNS subdomain
     * @param pluginsRegistryDir kubelet's plugin-watcher directory; the registration socket goes here
     * @param pluginDir the directory of the DRA service socket ({@code dra.sock}) kubelet dials
     * @param cdiDir where one CDI spec per prepared claim is written ({@code /var/run/cdi})
     * @param deviceClass the value of every GPU device's {@code class} attribute, for DeviceClass selectors
     * @param memoryMinimum the smallest memory a claim may consume of a GPU (the request policy's minimum)
     * @param memoryStep the memory request granularity (the request policy's step)
     * @param sliceUpdateDebounce how long slice updates wait for more changes before one write
     */
    public record Dra(
            boolean enabled,
            String driverName,
            Path pluginsRegistryDir,
            Path pluginDir,
            Path cdiDir,
            String deviceClass,
            long memoryMinimum,
            long memoryStep,
            Duration sliceUpdateDebounce) {

        /** The registration socket's file name in {@link #pluginsRegistryDir}, as kubelet's helper names it. */
        public String registrationSocketName() {
            return driverName + "-reg.sock";
        }

        /** The DRA service socket kubelet dials (the registration's endpoint). */
        public Path serviceSocket() {
            return pluginDir.resolve("dra.sock");
        }
    }

    /** The plugin's socket file name in the device-plugin directory. */
    public String pluginSocketName() {
        return resources.milliGpu().replace('/', '-').replace('.', '-') + ".sock";
    }
}
