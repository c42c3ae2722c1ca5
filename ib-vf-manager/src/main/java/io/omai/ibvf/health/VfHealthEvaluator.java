package io.omai.ibvf.health;

import io.omai.ibvf.health.VfHealth.Problem;
import io.omai.ibvf.health.VfHealth.Reason;
import io.omai.ibvf.kernel.Sysfs;
import io.omai.ibvf.kernel.SysfsLayout;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.LinkLayer;
import io.omai.ibvf.model.PhysicalFunction;
import io.omai.ibvf.model.PortState;
import io.omai.ibvf.model.VirtualFunction;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Health rules for one VF, from what sysfs shows now. Nothing is sticky: a VF whose problems are fixed is healthy at
 * the next evaluation (unlike device plugins that can only ever go Unhealthy).
 */
public final class VfHealthEvaluator {

    private final Sysfs sysfs;

    public VfHealthEvaluator(Sysfs sysfs) {
        this.sysfs = sysfs;
    }

    public VfHealth evaluate(PhysicalFunction pf, VirtualFunction vf, DesiredVfState desired) {
        List<Problem> problems = new ArrayList<>();
        Optional<PortState> pfPort = pf.portState();
        if (pfPort.filter(state -> state == PortState.ACTIVE).isEmpty()) {
            problems.add(new Problem(
                    Reason.PF_PORT_NOT_ACTIVE,
                    "PF " + pf.address() + " port state is "
                            + pfPort.map(PortState::sysfsText).orElse("unknown (no RDMA device)")));
        }
        if (vf.driver().isEmpty()) {
            problems.add(new Problem(Reason.NO_DRIVER, "VF " + vf.address() + " has no driver bound"));
        }
        if (vf.rdmaDevice().isEmpty()) {
            problems.add(new Problem(
                    Reason.NO_RDMA_DEVICE,
                    "VF " + vf.address() + " has no RDMA device under " + SysfsLayout.rdmaDevices(vf.address())));
        } else {
            if (pf.linkLayer() == LinkLayer.INFINIBAND) {
                checkGuids(vf, desired, problems);
            }
            checkState(pf, vf, desired, problems);
        }
        return problems.isEmpty() ? VfHealth.HEALTHY : new VfHealth.Unhealthy(problems);
    }

    private static void checkGuids(VirtualFunction vf, DesiredVfState desired, List<Problem> problems) {
        // a GUID sysfs does not show is absent, never reported as if the VF showed all zeros
        if (vf.nodeGuid().isEmpty() || vf.portGuid().isEmpty()) {
            problems.add(new Problem(
                    Reason.GUID_INVALID,
                    "VF " + vf.address() + " node GUID "
                            + vf.nodeGuid().map(Guid::toSysfsFormat).orElse("absent")
                            + ", port GUID "
                            + vf.portGuid().map(Guid::toSysfsFormat).orElse("absent")
                            + " (absent: its RDMA device shows no node_guid or ports/1/gids/0)"));
            return;
        }
        Guid node = vf.nodeGuid().orElseThrow();
        Guid port = vf.portGuid().orElseThrow();
        if (!node.isAssignable() || !port.isAssignable()) {
            problems.add(new Problem(
                    Reason.GUID_INVALID,
                    "VF " + vf.address() + " node GUID " + node.toSysfsFormat() + ", port GUID " + port.toSysfsFormat()
                            + " (all-zero or all-ones is invalid)"));
            return;
        }
        desired.guid()
                .filter(expected -> !expected.equals(node) || !expected.equals(port))
                .ifPresent(expected -> problems.add(new Problem(
                        Reason.GUID_NOT_AS_ASSIGNED,
                        "VF " + vf.address() + " shows node GUID " + node + ", port GUID " + port + "; assigned "
                                + expected)));
    }

    private void checkState(PhysicalFunction pf, VirtualFunction vf, DesiredVfState desired, List<Problem> problems) {
        Optional<PortState> port = vf.portState();
        if (port.filter(state -> state == PortState.ACTIVE).isEmpty()) {
            problems.add(new Problem(
                    Reason.STATE_NOT_AS_DESIRED,
                    "VF " + vf.address() + " port state is "
                            + port.map(PortState::sysfsText).orElse("unknown") + ", desired 4: ACTIVE"));
        }
        String policyPath = SysfsLayout.mlnxVfConfig(pf.address(), vf.index()) + "/policy";
        sysfs.read(policyPath)
                .filter(policy -> !policy.equals(desired.linkState().mlnxPolicy()))
                .ifPresent(policy -> problems.add(new Problem(
                        Reason.STATE_NOT_AS_DESIRED,
                        policyPath + " is '" + policy + "', desired '"
                                + desired.linkState().mlnxPolicy() + "'")));
    }
}
