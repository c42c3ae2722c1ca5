package io.omai.agent.quota.compute;

import static io.omai.agent.quota.shm.ComputeMode.HARD_CAP;
import static io.omai.agent.quota.shm.ComputeMode.WORK_CONSERVING;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.omai.agent.quota.shm.ComputeMode;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The control law on the deterministic GPU model: saturating containers converge on their shares within 2 s and
 * hold them for 10 s, whatever their kernel lengths; work-conserving containers borrow idle time and give it
 * back. The model has no noise, so the bands are the issue's own (±3 points).
 */
class ComputeControllerTest {
    private static final long MS = 1_000_000;
    private static final long PERIOD = 100 * MS;

    static List<Arguments> saturatingMixes() {
        return List.of(
                Arguments.of("300/700", new int[] {300, 700}, new long[] {1 * MS, 3 * MS}),
                Arguments.of("200/300/500", new int[] {200, 300, 500}, new long[] {2 * MS, 500_000, 4 * MS}),
                Arguments.of("250x4", new int[] {250, 250, 250, 250}, new long[] {1 * MS, 2 * MS, 300_000, 5 * MS}),
                Arguments.of("300/700 equal kernels", new int[] {300, 700}, new long[] {2 * MS, 2 * MS}));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("saturatingMixes")
    void saturatingHardCapContainersConvergeOnTheirShares(String name, int[] quotas, long[] kernels) {
        ModelGpu gpu = new ModelGpu(PERIOD);
        for (int i = 0; i < quotas.length; i++) {
            gpu.add("c" + i, quotas[i], HARD_CAP, kernels[i], 0);
        }
        gpu.runWindow(2_000 * MS);
        for (long t = 3_000; t <= 12_000; t += 1_000) {
            double[] shares = gpu.runWindow(t * MS);
            for (int i = 0; i < quotas.length; i++) {
                assertThat(shares[i])
                        .as("%s: container %d at %d ms: %s", name, i, t, Arrays.toString(shares))
                        .isCloseTo(quotas[i] / 1000.0, within(0.03));
            }
        }
    }

    @Test
    void aLoneHardCapContainerStaysAtItsShareOnAnIdleGpu() {
        ModelGpu gpu = new ModelGpu(PERIOD);
        gpu.add("alone", 300, HARD_CAP, 2 * MS, 0);
        gpu.runWindow(2_000 * MS);
        for (long t = 3_000; t <= 12_000; t += 1_000) {
            assertThat(gpu.runWindow(t * MS)[0]).isCloseTo(0.30, within(0.03));
        }
    }

    @Test
    void aLoneWorkConservingContainerBorrowsTheIdleGpuAndGivesItBackWithinASecond() {
        ModelGpu gpu = new ModelGpu(PERIOD);
        gpu.add("borrower", 300, WORK_CONSERVING, 1 * MS, 0);
        gpu.add("newcomer", 700, HARD_CAP, 2 * MS, 6_000 * MS);
        gpu.runWindow(2_000 * MS);
        for (long t = 3_000; t <= 6_000; t += 1_000) {
            assertThat(gpu.runWindow(t * MS)[0]).as("alone at %d ms", t).isGreaterThanOrEqualTo(0.90);
        }
        // The newcomer arrives at 6 s; one second later the borrower is back to its share.
        gpu.runWindow(7_000 * MS);
        for (long t = 7_500; t <= 12_000; t += 500) {
            double[] shares = gpu.runWindow(t * MS);
            assertThat(shares[0])
                    .as("borrower at %d ms: %s", t, Arrays.toString(shares))
                    .isCloseTo(0.30, within(0.03));
            assertThat(shares[1])
                    .as("newcomer at %d ms: %s", t, Arrays.toString(shares))
                    .isCloseTo(0.70, within(0.03));
        }
        assertThat(gpu.controller().borrowedNs()).isZero();
    }

    @Test
    void workConservingContainersShareIdleTimeInProportionToTheirQuotas() {
        ModelGpu gpu = new ModelGpu(PERIOD);
        gpu.add("a", 200, WORK_CONSERVING, 1 * MS, 0);
        gpu.add("b", 400, WORK_CONSERVING, 2 * MS, 0);
        gpu.runWindow(3_000 * MS);
        double[] shares = gpu.runWindow(8_000 * MS);
        assertThat(shares[0] + shares[1]).as(Arrays.toString(shares)).isGreaterThanOrEqualTo(0.90);
        assertThat(shares[1] / shares[0]).as(Arrays.toString(shares)).isCloseTo(2.0, within(0.25));
    }

    @Test
    void anIdleContainerCannotBankTimeForABurst() {
        ComputeController controller = new ComputeController(PERIOD);
        long grant = 0;
        for (int tick = 0; tick < 50; tick++) {
            GrantDecision d = controller
                    .tick(List.of(new ContainerSample("idle", 500, ComputeMode.HARD_CAP, grant, 0, 0, 0, 0)))
                    .getFirst();
            grant = d.grantNs();
        }
        assertThat(grant)
                .as("at most one period of its share ahead of what it spent")
                .isEqualTo(50 * MS);
    }

    @Test
    void launchCostFollowsTheMeasuredGpuTimePerLaunch() {
        ComputeController controller = new ComputeController(PERIOD);
        long launches = 0;
        GrantDecision d = null;
        for (int tick = 0; tick < 30; tick++) {
            launches += 20;
            d = controller
                    .tick(List.of(new ContainerSample("c", 400, HARD_CAP, 0, 0, launches, 0, 40 * MS)))
                    .getFirst();
        }
        assertThat(d.launchCostNs()).isCloseTo(2 * MS, within(20_000L));
    }

    @Test
    void launchCostIsUnbiasedWhenLaunchesAndTheirGpuTimeFallInDifferentPeriods() {
        // 20 ms kernels, 60 ms of GPU time every period; a launch is counted when charged (a throttled one before
        // it waits for the next grant) but runs in the next period, so the counts alternate 2, 4, 2, 4 ...
        ComputeController controller = new ComputeController(PERIOD);
        long launches = 0;
        double chargedSum = 0;
        int averaged = 0;
        for (int tick = 0; tick < 60; tick++) {
            launches += tick % 2 == 0 ? 2 : 4;
            GrantDecision d = controller
                    .tick(List.of(new ContainerSample("trainer", 600, HARD_CAP, 0, 0, launches, 0, 60 * MS)))
                    .getFirst();
            if (tick >= 40) {
                chargedSum += d.launchCostNs();
                averaged++;
            }
        }
        // Charged 22.5 ms on average before (a smoothed per-period ratio): 8 % fewer launches than the quota buys.
        assertThat(chargedSum / averaged).as("average charge per launch").isCloseTo(20.0 * MS, within(0.2 * MS));
    }

    @Test
    void aCatchUpStepOfAFewMillisecondsBarelyMovesTheLaunchCost() {
        ComputeController controller = new ComputeController(PERIOD);
        long launches = 0;
        GrantDecision d = null;
        for (int tick = 0; tick < 30; tick++) {
            launches += 3;
            d = controller
                    .tick(List.of(new ContainerSample("c", 600, HARD_CAP, 0, 0, launches, 0, 60 * MS)))
                    .getFirst();
        }
        assertThat(d.launchCostNs()).isCloseTo(20 * MS, within(100_000L));
        // 5 ms after a late step: one launch charged, its kernel not run yet
        d = controller
                .tick(List.of(new ContainerSample("c", 600, HARD_CAP, 0, 0, launches + 1, 0, 0)), 5 * MS)
                .getFirst();
        assertThat(d.launchCostNs())
                .as("a 5 ms window weighs a twentieth of a period")
                .isCloseTo(20 * MS, within(20 * MS / 50));
    }

    @Test
    void aLateStepGrantsForTheTimeThatPassedAndTheCatchUpStepForTheLittleSince() {
        ComputeController controller = new ComputeController(PERIOD);
        long grant = controller
                .tick(List.of(new ContainerSample("c", 300, HARD_CAP, 0, 0, 0, 0, 0)))
                .getFirst()
                .grantNs();
        assertThat(grant).isEqualTo(30 * MS);
        // Spent it all; the next step comes 250 ms late: 1.5 periods of the share, never more than 2.
        grant = controller
                .tick(List.of(new ContainerSample("c", 300, HARD_CAP, grant, grant, 10, 0, 30 * MS)), 150 * MS)
                .getFirst()
                .grantNs();
        assertThat(grant).isEqualTo(75 * MS);
        grant = controller
                .tick(List.of(new ContainerSample("c", 300, HARD_CAP, grant, grant, 25, 0, 45 * MS)), 1_000 * MS)
                .getFirst()
                .grantNs();
        assertThat(grant).as("a 1 s stall grants two periods, not ten").isEqualTo(135 * MS);
        // The scheduler's catch-up step right after: almost no time passed, almost nothing more.
        assertThat(controller
                        .tick(List.of(new ContainerSample("c", 300, HARD_CAP, grant, grant, 45, 0, 60 * MS)), 1 * MS)
                        .getFirst()
                        .grantNs())
                .isEqualTo(135 * MS + 300_000);
    }

    @Test
    void aLoneBorrowerOvershootingTheHeadroomKeepsItsLoanAndGivesItBackWhenSomeoneElseRuns() {
        ComputeController controller = new ComputeController(PERIOD);
        for (int tick = 1; tick <= 30; tick++) { // hungry (it waits), 40 % of the GPU idle: the loan grows
            controller.tick(List.of(new ContainerSample("b", 300, WORK_CONSERVING, 0, 0, 0, tick * MS, 60 * MS)));
        }
        assertThat(controller.borrowedNs())
                .as("all but the headroom and its own share")
                .isEqualTo(66 * MS);
        // Its own kernels leave less than half the headroom idle: nobody else wants the time, the loan stays.
        controller.tick(List.of(new ContainerSample("b", 300, WORK_CONSERVING, 0, 0, 0, 31 * MS, 99 * MS)));
        assertThat(controller.borrowedNs()).isEqualTo(66 * MS);
        // Someone else ran: the loan is halved.
        controller.tick(List.of(
                new ContainerSample("b", 300, WORK_CONSERVING, 0, 0, 0, 32 * MS, 79 * MS),
                new ContainerSample("n", 700, HARD_CAP, 0, 0, 0, 0, 20 * MS)));
        assertThat(controller.borrowedNs()).isLessThanOrEqualTo(33 * MS);
    }

    @Test
    void containersThatLeaveAreForgotten() {
        ComputeController controller = new ComputeController(PERIOD);
        controller.tick(List.of(
                new ContainerSample("a", 300, HARD_CAP, 0, 0, 0, 0, 0),
                new ContainerSample("b", 300, HARD_CAP, 0, 0, 0, 0, 0)));
        List<GrantDecision> next = controller.tick(List.of(new ContainerSample("b", 300, HARD_CAP, 0, 0, 0, 0, 0)));
        assertThat(next).extracting(GrantDecision::allocationId).containsExactly("b");
    }
}
