package io.omai.agent.deviceplugin;

import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateResponse;
import io.omai.ibvf.IbVfManager;
import io.omai.ibvf.error.IbVfException;
import io.omai.ibvf.inventory.InventorySnapshot;
import io.omai.ibvf.inventory.PfStatus;
import io.omai.ibvf.inventory.VfStatus;
import io.omai.ibvf.model.PciAddress;
import io.omai.ibvf.model.PhysicalFunction;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;
import java.util.Set;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * The VFs of one VF resource as the DRA driver sees them: the same inventory, the same bookkeeper
 * ({@link VfAllocations}) and the same container edits as that resource's device plugin, so a VF is handed out by
 * one path at a time and a claim's container gets what Allocate would give ({@code uverbsN}, {@code rdma_cm}, env).
 */
public final class VfClaims {
    /** Who holds a VF that is not free. */
    public static final String DEVICE_PLUGIN = "device-plugin";

    private final String resourceName;
    private final IbVfManager manager;
    private final Supplier<InventorySnapshot> inventory;
    private final VfAllocations allocations;
    private final Consumer<Runnable> subscribe;

    VfClaims(
            String resourceName,
            IbVfManager manager,
            Supplier<InventorySnapshot> inventory,
            VfAllocations allocations,
            Consumer<Runnable> subscribe) {
        this.resourceName = resourceName;
        this.manager = manager;
        this.inventory = inventory;
        this.allocations = allocations;
        this.subscribe = subscribe;
    }

    /**
     * One VF of the resource.
     *
     * @param pciAddress e.g. 0000:3b:00.2
     * @param pfName the PF's netdev (e.g. ib0), else its RDMA device, else its PCI address
     * @param numaNode the PF's NUMA node; empty when the kernel says -1
     * @param linkType {@code infiniband} or {@code ethernet}
     * @param health {@code Healthy}, else the reasons it is not
     * @param holder empty when free, {@link #DEVICE_PLUGIN}, or the UID of the DRA claim holding it
     */
    public record Vf(
            String pciAddress,
            String pfName,
            OptionalInt numaNode,
            String linkType,
            boolean healthy,
            String health,
            String holder) {}

    /** A claim's VFs cannot be handed out; nothing was recorded. */
    public static final class RefusedException extends Exception {
        RefusedException(String message) {
            super(message, null, false, false);
        }
    }

    public String resourceName() {
        return resourceName;
    }

    /** The resource's VFs now, in PF then VF order. */
    public List<Vf> vfs() {
        Map<PciAddress, String> claims = allocations.claims();
        Set<PciAddress> devicePlugin = allocations.devicePluginVfs();
        List<Vf> vfs = new ArrayList<>();
        for (PfStatus pf : VfDeviceList.managedPfs(inventory.get())) {
            PhysicalFunction function = pf.pf();
            String pfName = function.netdev()
                    .or(function::rdmaDevice)
                    .orElse(function.address().value());
            for (VfStatus vf : pf.vfs()) {
                PciAddress address = vf.vf().address();
                String holder = devicePlugin.contains(address)
                        ? DEVICE_PLUGIN
                        : Objects.requireNonNullElse(claims.get(address), "");
                vfs.add(new Vf(
                        address.value(),
                        pfName,
                        function.numaNode(),
                        function.linkLayer().name().toLowerCase(Locale.ROOT),
                        vf.health().isHealthy(),
                        vf.health().toString(),
                        holder));
            }
        }
        return vfs;
    }

    /** Whether claim {@code claimUid} holds VFs (was prepared). */
    public boolean holds(String claimUid) {
        return allocations.claims().containsValue(claimUid);
    }

    /**
     * Claim {@code claimUid} takes {@code pciAddresses} (each known, healthy unless the claim holds it already, held
     * by no one else) and gets their container edits; a refusal records nothing new.
     */
    public ContainerAllocateResponse claim(String claimUid, List<String> pciAddresses) throws RefusedException {
        Map<String, Vf> known = new java.util.LinkedHashMap<>();
        vfs().forEach(vf -> known.put(vf.pciAddress(), vf));
        Set<PciAddress> wanted = new LinkedHashSet<>();
        for (String address : pciAddresses) {
            Vf vf = known.get(address);
            if (vf == null) {
                throw new RefusedException("VF " + address + " is not one of the " + known.size() + " VFs of "
                        + resourceName + " on this node (removed, or never ours)");
            }
            if (!vf.healthy() && !vf.holder().equals(claimUid)) {
                throw new RefusedException("VF " + address + " is " + vf.health()
                        + "; expected a healthy VF (the slice taints it unhealthy)");
            }
            wanted.add(PciAddress.of(address));
        }
        boolean repeat = wanted.stream()
                .allMatch(vf -> claimUid.equals(allocations.claims().get(vf)));
        try {
            var refused = allocations.claim(claimUid, wanted);
            if (refused.isPresent()) {
                throw new RefusedException(refused.get());
            }
        } catch (IOException e) {
            throw new RefusedException("cannot record the claim's VFs in the checkpoint: " + e.getMessage());
        }
        try {
            return VfPluginService.containerEdits(manager, resourceName, List.copyOf(wanted));
        } catch (IbVfException e) {
            if (!repeat) {
                try {
                    allocations.releaseClaim(claimUid);
                } catch (IOException notRecorded) {
                    e.addSuppressed(notRecorded);
                }
            }
            throw new RefusedException("cannot resolve the VFs' device nodes: " + e.getMessage());
        }
    }

    /** Releases the VFs of claim {@code claimUid}; their PCI addresses (none when it held none). */
    public List<String> release(String claimUid) throws IOException {
        return allocations.releaseClaim(claimUid).stream()
                .map(PciAddress::value)
                .toList();
    }

    /** Runs {@code listener} after the inventory or the holders changed. */
    public void onChange(Runnable listener) {
        subscribe.accept(listener);
    }
}
