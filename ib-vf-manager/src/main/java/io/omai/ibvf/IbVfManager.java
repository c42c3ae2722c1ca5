package io.omai.ibvf;

import io.omai.ibvf.alloc.PciTopology;
import io.omai.ibvf.alloc.VfAllocation;
import io.omai.ibvf.alloc.VfDeviceNodeResolver;
import io.omai.ibvf.alloc.VfPreference;
import io.omai.ibvf.config.BoundedWait;
import io.omai.ibvf.config.RebindLock;
import io.omai.ibvf.config.Sleeper;
import io.omai.ibvf.config.VfCountReconciler;
import io.omai.ibvf.config.VfGuidConfigurator;
import io.omai.ibvf.discovery.SysfsDiscovery;
import io.omai.ibvf.guid.GuidAllocator;
import io.omai.ibvf.guid.GuidAllocator.ObservedGuid;
import io.omai.ibvf.guid.GuidStore;
import io.omai.ibvf.health.DesiredVfState;
import io.omai.ibvf.health.VfHealthEvaluator;
import io.omai.ibvf.inventory.IbVfMonitor;
import io.omai.ibvf.kernel.IpLink;
import io.omai.ibvf.kernel.Sysfs;
import io.omai.ibvf.kernel.SysfsLayout;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.LinkLayer;
import io.omai.ibvf.model.PciAddress;
import io.omai.ibvf.model.PhysicalFunction;
import io.omai.ibvf.model.VirtualFunction;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * The node's InfiniBand SR-IOV VF manager: reconciles VF counts and GUIDs, and hands out the pieces the agent
 * needs (monitor for health and rediscovery, allocation-time device nodes, GPU-affinity ordering).
 * Everything kernel-facing goes through the {@link Sysfs} and {@link IpLink} given to it.
 */
public final class IbVfManager {

    private final IbVfManagerConfig config;
    private final Sysfs sysfs;
    private final SysfsDiscovery discovery;
    private final GuidAllocator guids;
    private final VfCountReconciler counts;
    private final VfGuidConfigurator guidConfigurator;

    public IbVfManager(
            IbVfManagerConfig config,
            Sysfs sysfs,
            IpLink ipLink,
            GuidStore guidStore,
            RebindLock rebindLock,
            Sleeper sleeper) {
        this.config = config;
        this.sysfs = sysfs;
        this.discovery = new SysfsDiscovery(sysfs);
        this.guids = new GuidAllocator(config.nodeName(), config.guidRange(), guidStore);
        BoundedWait wait = new BoundedWait(config.readiness(), sleeper);
        this.counts = new VfCountReconciler(sysfs, wait);
        this.guidConfigurator = new VfGuidConfigurator(sysfs, ipLink, rebindLock, wait);
    }

    /**
     * What one reconcile did.
     *
     * @param guids       the GUID of every VF of an IB PF (empty map on Ethernet)
     * @param reconfigured indices of VFs whose GUID had to be set and the VF rebound
     */
    public record ReconcileResult(
            PciAddress pf, int previousVfs, int enabledVfs, Map<Integer, Guid> guids, List<Integer> reconfigured) {}

    public List<PhysicalFunction> discover() {
        return discovery.discover();
    }

    /**
     * Brings {@code pf} to {@code desiredVfs} VFs, each (on InfiniBand) with its assigned GUID and link policy set
     * and visible in sysfs. Idempotent: a PF already in that state sees no write at all. Call it before advertising
     * the VFs, and again whenever the monitor reports VFs gone (driver reload, firmware reset).
     */
    public ReconcileResult reconcile(PciAddress pf, int desiredVfs) {
        VfCountReconciler.CountChange change = counts.reconcile(pf, desiredVfs);
        PhysicalFunction current = discovery.discoverPf(pf);
        Map<Integer, Guid> assigned = new TreeMap<>();
        List<Integer> reconfigured = new ArrayList<>();
        if (current.linkLayer() == LinkLayer.INFINIBAND) {
            List<ObservedGuid> observed = observedGuids();
            for (VirtualFunction vf : current.vfs()) {
                Guid guid = guids.assign(pf, vf.index(), vf.address(), observed);
                assigned.put(vf.index(), guid);
                if (!vf.nodeGuid().equals(Optional.of(guid))
                        || !vf.portGuid().equals(Optional.of(guid))
                        || !policyMatches(current, vf)) {
                    guidConfigurator.apply(current, vf, guid, config.vfLinkState());
                    reconfigured.add(vf.index());
                }
            }
        }
        return new ReconcileResult(pf, change.previous(), change.enabled(), assigned, reconfigured);
    }

    /** The GUID this node assigned to a VF, if any; survives restarts through the {@link GuidStore}. */
    public Optional<Guid> assignedGuid(PciAddress pf, int vfIndex) {
        return guids.assigned(pf, vfIndex);
    }

    /** What health compares a VF against: the configured link policy and, on IB, the assigned GUID. */
    public DesiredVfState desiredState(PhysicalFunction pf, VirtualFunction vf) {
        Optional<Guid> guid =
                pf.linkLayer() == LinkLayer.INFINIBAND ? guids.assigned(pf.address(), vf.index()) : Optional.empty();
        return new DesiredVfState(config.vfLinkState(), guid);
    }

    /** A monitor for continuous rediscovery and health, judging VFs against this manager's desired state. */
    public IbVfMonitor newMonitor() {
        return new IbVfMonitor(discovery, new VfHealthEvaluator(sysfs), this::desiredState);
    }

    /** Device nodes and env for one VF, read from sysfs now (call it inside kubelet's Allocate, never cache it). */
    public VfAllocation allocationFor(PciAddress vf) {
        return new VfDeviceNodeResolver(sysfs).resolve(vf);
    }

    public VfPreference preference() {
        return new VfPreference(new PciTopology(sysfs));
    }

    /** On MLNX_OFED the per-VF policy file is readable; upstream the policy set by ip link cannot be read back. */
    private boolean policyMatches(PhysicalFunction pf, VirtualFunction vf) {
        return sysfs.read(SysfsLayout.mlnxVfConfig(pf.address(), vf.index()) + "/policy")
                .map(policy -> policy.equals(config.vfLinkState().mlnxPolicy()))
                .orElse(true);
    }

    private List<ObservedGuid> observedGuids() {
        List<ObservedGuid> observed = new ArrayList<>();
        for (PhysicalFunction pf : discovery.discover()) {
            pf.nodeGuid().ifPresent(guid -> observed.add(new ObservedGuid(guid, pf.address())));
            for (VirtualFunction vf : pf.vfs()) {
                vf.nodeGuid().ifPresent(guid -> observed.add(new ObservedGuid(guid, vf.address())));
                vf.portGuid().ifPresent(guid -> observed.add(new ObservedGuid(guid, vf.address())));
            }
        }
        return observed;
    }
}
