package io.omai.harness.adversarial;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ShmLayout;
import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.launcher.ContainerLauncher;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Attacks of a tenant ({@code team-b}) that the shim cannot stop and the NVML audit must: a container zeroes its
 * usage file's total while holding memory and allocates past its quota; a process in the container runs without
 * the shim. The audit (policy kill) sees NVML's figures, attributes processes by mount namespace and cgroup, and
 * kills within one audit interval (plus a pass). Another tenant ({@code team-a}) on the same GPU keeps running
 * with live heartbeats and growing grants throughout. Needs root (mount namespaces).
 */
class GroundTruthAttackTest {
    private static final Duration AUDIT_INTERVAL = Duration.ofMillis(500);
    private static final Duration PATIENCE = Duration.ofSeconds(30);
    /** The first device's bytes_reserved in the usage file: the container-wide total the shim checks. */
    private static final long TOTAL_OFFSET = ShmLayout.USAGE_DEVICES_OFFSET;

    @TempDir
    static Path root;

    private static HostileTenantsNode node;
    private static KubeletSimulator.Admission victim;
    private static Container victimContainer;

    @BeforeAll
    static void start() throws Exception {
        Optional<String> unavailable = ContainerLauncher.mountNamespaceUnavailable();
        assumeTrue(unavailable.isEmpty(), () -> "skipped: " + unavailable.orElseThrow());
        node = new HostileTenantsNode(root, AUDIT_INTERVAL);
        victim = node.admit("team-a", "infer-0", 250);
        victimContainer = node.start(
                victim,
                List.of(
                        "/bin/sh",
                        "-c",
                        "\"$0\" alloc alloc 1GiB duty kernel 600 90; echo victim-exit=$?",
                        node.workload()));
        victimContainer.await("op=alloc", PATIENCE);
    }

    @AfterAll
    static void stop() throws Exception {
        if (node != null) {
            node.close();
        }
    }

    @AfterEach
    void theOtherTenantIsUnharmed() throws Exception {
        node.assertUnharmed(victim);
        assertThat(victimContainer.output())
                .as(() -> "the other tenant's workload still runs; the agent's findings: "
                        + node.agent
                                .log()
                                .lines()
                                .filter(l -> l.contains("event=audit_"))
                                .toList())
                .doesNotContain("victim-exit");
    }

    /** A reading of the usage total, as a shell in the container can make one. */
    private static String readTotal() {
        return "$(od -An -tu8 -j " + TOTAL_OFFSET + " -N8 /run/omai/usage | tr -d ' ')";
    }

    /**
     * The case: each process within the quota, the container twice over it. The shim checks the
     * container's total in the usage file, which the container can write; NVML's per-process memory it cannot.
     */
    @Test
    void zeroingTheUsageTotalWhileHoldingMemoryGetsTheContainerKilledWithinOneAuditInterval() throws Exception {
        KubeletSimulator.Admission attacker = node.admit("team-b", "zeroer-0", 250); // 4 GiB of a 16 GiB GPU
        String script = """
                "$0" alloc alloc 3GiB sleep 120 &
                a=$!
                while [ "%1$s" = 0 ]; do sleep 0.05; done
                printf '\\000\\000\\000\\000\\000\\000\\000\\000' \\
                    | dd of=/run/omai/usage bs=1 seek=%2$d count=8 conv=notrunc 2>/dev/null
                echo "zeroed total=%1$s caps=$(grep CapEff /proc/self/status | tr -d '\\t')"
                "$0" alloc alloc 3GiB sleep 120 &
                b=$!
                wait $a; echo "first-exit=$?"
                wait $b; echo "second-exit=$?"
                """.formatted(readTotal(), TOTAL_OFFSET);
        // root without capabilities, as in an unprivileged pod
        Container attack = node.start(
                attacker,
                List.of(
                        "setpriv",
                        "--bounding-set=-all",
                        "--inh-caps=-all",
                        "--",
                        "/bin/sh",
                        "-c",
                        script,
                        node.workload()));

        assertThat(attack.await("zeroed", PATIENCE).text()).contains("total=0", "CapEff:0000000000000000");
        Container.Line pastQuota = attack.await("op=alloc", 2, PATIENCE);
        assertThat(pastQuota.text()).as("the shim trusted the zeroed total").contains("status=CUDA_SUCCESS");
        Container.Line first = attack.await("first-exit=", PATIENCE);
        Container.Line second = attack.await("second-exit=", PATIENCE);
        Duration heldPastQuota =
                Duration.ofNanos(Math.max(first.seenNanos(), second.seenNanos()) - pastQuota.seenNanos());

        assertThat(List.of(first.text(), second.text()))
                .as("SIGKILL by the audit, both processes")
                .containsExactly("first-exit=137", "second-exit=137");
        assertThat(heldPastQuota)
                .as("held beyond its quota for at most one audit interval + 2 s")
                .isLessThan(AUDIT_INTERVAL.plusSeconds(2));
        node.agent.awaitLog("reason=container_memory_over_quota gpu=", Duration.ofSeconds(5));
        assertThat(node.auditLog())
                .contains(
                        "pod=team-b/zeroer-0 allocation=" + HostileTenantsNode.allocationId(attacker) + " killed=true");
        assertThat(node.scrape())
                .containsPattern("omai_audit_findings_total\\{[^}]*finding=\"memory_over_quota\"[^}]*\\} [1-9]");
        System.out.printf(
                "adversarial: zeroed total, 2 x 3 GiB held on a 4 GiB quota for %d ms until the kill "
                        + "(audit interval %d ms)%n",
                heldPastQuota.toMillis(), AUDIT_INTERVAL.toMillis());
    }

    @Test
    void aProcessWithoutTheShimInAContainerIsNamedAndKilled() throws Exception {
        KubeletSimulator.Admission attacker = node.admit("team-b", "static-0", 250);
        // umount of the preload stands in for a static binary or raw ioctls: the shim is not in the process
        String script = """
                "$0" alloc alloc 1GiB sleep 120 &
                s=$!
                while [ "%1$s" = 0 ]; do sleep 0.05; done
                umount /etc/ld.so.preload
                echo "preload=[$(cat /etc/ld.so.preload)]"
                "$0" alloc alloc 2GiB sleep 120 &
                r=$!
                echo "rogue=$r"
                wait $r; echo "rogue-exit=$?"
                kill $s; wait $s; echo "shimmed-exit=$?"
                """.formatted(readTotal());
        Container attack = node.start(attacker, List.of("/bin/sh", "-c", script, node.workload()));

        assertThat(attack.await("preload=", PATIENCE).text()).isEqualTo("preload=[]");
        String rogue = attack.await("rogue=", PATIENCE).text().substring("rogue=".length());
        Container.Line allocated = attack.await("op=alloc", 2, PATIENCE);
        assertThat(allocated.text()).contains("status=CUDA_SUCCESS");
        Container.Line killed = attack.await("rogue-exit=", PATIENCE);
        assertThat(killed.text()).isEqualTo("rogue-exit=137");
        assertThat(attack.await("shimmed-exit=", PATIENCE).text())
                .as("its shimmed sibling was left alone")
                .isEqualTo("shimmed-exit=143");

        // the kill comes before the log line: wait for this process's line
        node.agent.awaitLog("pid=" + rogue + " pod=team-b/static-0", Duration.ofSeconds(5));
        assertThat(node.auditLog())
                .containsPattern("event=audit_violation reason=no_shim gpu=\\S+ pid=" + rogue
                        + " pod=team-b/static-0 allocation=" + HostileTenantsNode.allocationId(attacker)
                        + " killed=true");
        assertThat(node.scrape()).containsPattern("omai_audit_findings_total\\{[^}]*finding=\"no_shim\"[^}]*\\} [1-9]");
        System.out.printf(
                "adversarial: unshimmed process on a shared GPU killed %d ms after its allocation "
                        + "(audit interval %d ms, two passes)%n",
                Duration.ofNanos(killed.seenNanos() - allocated.seenNanos()).toMillis(), AUDIT_INTERVAL.toMillis());
    }

    /**
     * No shimmed process, so no slot points to the container's cgroup or namespace: the usage file its root shows at
     * /run/omai/usage (the bind mount it cannot undo) still names the pod.
     */
    @Test
    void aContainerWhoseOnlyProcessRunsWithoutTheShimIsNamedByItsUsageMount() throws Exception {
        KubeletSimulator.Admission attacker = node.admit("team-b", "static-1", 250);
        Container attack = node.start(attacker, List.of("/bin/sh", "-c", """
                umount /etc/ld.so.preload
                "$0" alloc alloc 2GiB sleep 120 &
                r=$!
                echo "rogue=$r"
                wait $r; echo "rogue-exit=$?"
                """, node.workload()));

        String rogue = attack.await("rogue=", PATIENCE).text().substring("rogue=".length());
        assertThat(attack.await("op=alloc", PATIENCE).text()).contains("status=CUDA_SUCCESS");
        assertThat(attack.await("rogue-exit=", PATIENCE).text()).isEqualTo("rogue-exit=137");
        node.agent.awaitLog("pid=" + rogue + " pod=team-b/static-1", Duration.ofSeconds(5));
        assertThat(node.auditLog())
                .containsPattern("event=audit_violation reason=no_shim gpu=\\S+ pid=" + rogue
                        + " pod=team-b/static-1 allocation=" + HostileTenantsNode.allocationId(attacker)
                        + " killed=true");
    }

    /** Allocation directories are 0700: a host user other than the agent's reaches no tenant's files. */
    @Test
    void aHostUserCannotOpenAnotherAllocationsFiles() throws Exception {
        Path directory = node.allocationDir(victim);
        Path usage = directory.resolve(AllocationFiles.USAGE);
        ProcessBuilder nobody = new ProcessBuilder(
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
                "/bin/sh",
                "-c",
                """
                ls "$1" >/dev/null && echo listed-allocations
                (exec 3<>"$2") 2>/dev/null && echo opened-usage || echo refused-usage
                cat "$3" >/dev/null 2>&1 && echo read-control || echo refused-control
                """,
                "sh",
                directory.getParent().toString(),
                usage.toString(),
                directory.resolve(AllocationFiles.CONTROL).toString());
        Container attempt = Container.start(nobody);
        attempt.await("refused-control", PATIENCE);
        assertThat(attempt.output())
                .as("the parent is open to all; the allocation directory is not")
                .contains("listed-allocations", "refused-usage", "refused-control")
                .doesNotContain("opened-usage", "read-control");
        attempt.close();
    }
}
