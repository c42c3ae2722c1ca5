package io.omai.agent.quota.compute;

/**
 * What the controller writes back for one container: its new cumulative grant and the GPU time it will charge
 * per launch.
 *
 * @param grantNs new cumulative grant, never below the previous one
 * @param launchCostNs GPU time per launch the shim charges
 * @param targetNs GPU time per period the container is entitled to now (share plus anything borrowed)
 */
public record GrantDecision(String allocationId, long grantNs, long launchCostNs, long targetNs) {}
