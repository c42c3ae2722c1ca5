package io.omai.harness.adversarial;

import static io.omai.agent.quota.shm.ShmLayout.USAGE_DEVICE;
import static io.omai.agent.quota.shm.ShmLayout.USAGE_SLOT;
import static io.omai.agent.quota.shm.ShmLayout.USAGE_SLOT_DEVICE;
import static io.omai.agent.quota.shm.ShmLayout.offset;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.MonotonicClock;
import io.omai.agent.quota.shm.ShmLayout;
import io.omai.agent.quota.shm.UsageRegion;
import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.launcher.AgentJvm;
import io.omai.simulator.launcher.ContainerLauncher;
import io.omai.simulator.node.SimulatedAgentNode;
import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The attacker of issue #13: root without capabilities inside a container, its usage file bind-mounted
 * read-write, under the real shim. One agent process (the daemon, {@code omai-agent run}), two tenants'
 * allocations on the two simulated GPUs, each attack made from inside the attacker's mount namespace. After each:
 * the finding is counted ({@code omai_audit_findings_total}) and logged naming the pod; the other tenant's
 * allocation keeps its heartbeat (age &lt; 2 s) and its grants, a SIGKILLed process of it is reclaimed within 2 s;
 * {@code /metrics} and {@code /healthz} answer 200. With {@code audit.onTamper: freeze} (the default) the attacker
 * cannot allocate past its quota by zeroing its total. A second agent, with {@code audit.onTamper: kill}, kills the
 * tamperer's process and no other.
 */
class UsageFileAttackTest {
    private static final String RESOURCE = "omai.io/milli-gpu";
    private static final long GIB = 1L << 30;
    private static final long GPU_MEMORY = 16 * GIB;
    private static final Duration PATIENCE = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    private final HttpClient http = HttpClient.newHttpClient();
    private final List<Process> processes = new ArrayList<>();
    private final Map<String, Long> detectionMillis = new LinkedHashMap<>();
    /** One launcher for the test: each launch gets its own overlay directories (two live ones must never share). */
    private ContainerLauncher launcher;

    @AfterEach
    void cleanUp() throws InterruptedException {
        for (Process p : processes) {
            p.destroyForcibly();
            p.waitFor(5, TimeUnit.SECONDS);
        }
        http.close();
    }

    @Test
    void everyAttackOnAUsageFileIsContainedNoticedAndCostsTheOtherTenantNothing() throws Exception {
        requireMountNamespaces();

        try (SimulatedAgentNode node = SimulatedAgentNode.create(dir, 2, GPU_MEMORY)) {
            SimNode sim = node.sim();
            Path state = node.paths().state();
            int port = SimulatedAgentNode.freePort();
            KubeletSimulator kubelet = node.startKubelet();
            AgentJvm agent = node.boot(config(node, port, "freeze"), AgentJvm.QUICK_START);

            KubeletSimulator.Admission attacker = kubelet.admit("team-a", "attacker", "main", RESOURCE, 500);
            KubeletSimulator.Admission victim = kubelet.admit("team-b", "victim", "main", RESOURCE, 500);
            Path attackerDir = state.resolve("allocations").resolve(id(attacker));
            Path victimDir = state.resolve("allocations").resolve(id(victim));
            Path attackerUsage = attackerDir.resolve(AllocationFiles.USAGE);
            Path victimUsage = victimDir.resolve(AllocationFiles.USAGE);
            String workload = sim.program("omai-workload").toString();

            // each tenant holds GPU memory through a process under the shim for the whole test
            start(sim, attacker, workload, "alloc", "alloc", Long.toString(4 * GIB), "sleep", "600");
            // the victim keeps launching (10% of its GPU's time), so its grant must keep growing
            start(sim, victim, workload, "alloc", "alloc", Long.toString(GIB), "duty", "kernel", "600", "10");
            holding(agent, () -> reserved(attackerUsage) == 4 * GIB && reserved(victimUsage) == GIB);
            byte[] pristine = Files.readAllBytes(attackerUsage);

            attack("truncate to 0", sim, attacker, "truncate -s 0 /run/omai/usage", "usage_tampered", port, agent);
            otherTenantIsUnharmed(sim, victim, victimDir, workload, port);
            restore(attackerUsage, pristine);

            attack(
                    "truncate to half",
                    sim,
                    attacker,
                    "truncate -s " + UsageRegion.FILE_SIZE / 2 + " /run/omai/usage",
                    "usage_tampered",
                    port,
                    agent);
            otherTenantIsUnharmed(sim, victim, victimDir, workload, port);
            restore(attackerUsage, pristine);

            attack(
                    "zero the magic",
                    sim,
                    attacker,
                    "dd if=/dev/zero of=/run/omai/usage bs=8 count=1 conv=notrunc 2>/dev/null",
                    "usage_tampered",
                    port,
                    agent);
            otherTenantIsUnharmed(sim, victim, victimDir, workload, port);
            restore(attackerUsage, pristine);

            Path slots = dir.resolve("all-slots.bin");
            Files.write(slots, everySlotTaken(pristine));
            attack(
                    "fill all 128 slots",
                    sim,
                    attacker,
                    "dd if=" + slots + " of=/run/omai/usage bs=4096 conv=notrunc" + " 2>/dev/null",
                    "slots_exhausted",
                    port,
                    agent);
            otherTenantIsUnharmed(sim, victim, victimDir, workload, port);
            restore(attackerUsage, pristine);

            Path forged = dir.resolve("forged-slot.bin");
            Files.write(forged, forgedDeadSlot(pristine));
            attack(
                    "forged dead slot of 2^63 bytes",
                    sim,
                    attacker,
                    "dd if=" + forged + " of=/run/omai/usage bs=4096 conv=notrunc 2>/dev/null",
                    "usage_tampered",
                    port,
                    agent);
            assertThat(reserved(attackerUsage))
                    .as("the reaper freed nothing the holder holds")
                    .isEqualTo(4 * GIB);
            otherTenantIsUnharmed(sim, victim, victimDir, workload, port);
            restore(attackerUsage, pristine);

            long totalAt = ShmLayout.USAGE_DEVICES_OFFSET + offset(USAGE_DEVICE, "bytes_reserved");
            attack(
                    "zero the total while holding 4 GiB",
                    sim,
                    attacker,
                    "dd if=/dev/zero of=/run/omai/usage bs=1 seek=" + totalAt + " count=8 conv=notrunc 2>/dev/null",
                    "usage_tampered",
                    port,
                    agent);
            SimNode.Run past = run(sim, attacker, workload, "alloc", "alloc", Long.toString(5 * GIB));
            assertThat(past.first("alloc").status())
                    .as("4 GiB held + 5 GiB > the 8 GiB quota; frozen: nothing at all\n" + past.stdout()
                            + past.stderr())
                    .isEqualTo("CUDA_ERROR_OUT_OF_MEMORY");
            otherTenantIsUnharmed(sim, victim, victimDir, workload, port);

            assertThat(Files.exists(attackerDir.resolve("frozen")))
                    .as("frozen until an operator deletes this")
                    .isTrue();
            try (AllocationFiles files = AllocationFiles.openReadOnly(attackerDir)) {
                assertThat(files.control().read().devices().getFirst().memoryLimitBytes())
                        .isZero();
            }
            assertThat(get(port, "/healthz").statusCode())
                    .as("every loop is alive")
                    .isEqualTo(200);
            assertThat(agent.alive()).isTrue();
            detectionMillis.forEach((attack, ms) ->
                    System.out.printf("adversarial attack=\"%s\" detected_ms=%d contained=true%n", attack, ms));
            assertThat(detectionMillis).hasSize(6);
        }
    }

    /** The attacks run inside mount namespaces: root (the effective uid, as CI runs) and a kernel that allows them. */
    private static void requireMountNamespaces() {
        Optional<String> unavailable = ContainerLauncher.mountNamespaceUnavailable();
        assumeTrue(unavailable.isEmpty(), () -> "skipped: " + unavailable.orElseThrow());
    }

    /** The attacked node's agent: quick kubelet timings, a 30 s grace, the audit every 300 ms, no scheduler API. */
    private Path config(SimulatedAgentNode node, int port, String onTamper) {
        return node.yaml("sim-node")
                .quickKubelet(Duration.ofMillis(300), Duration.ofSeconds(30))
                .set("tenancy.auditInterval", "300ms")
                .set("audit.onTamper", onTamper)
                .metrics(port)
                .schedulerApiOff()
                .writeTo(dir.resolve("agent-" + onTamper + ".yaml"));
    }

    @Test
    void withOnTamperKillTheTamperersProcessesDieAndNoOneElses() throws Exception {
        requireMountNamespaces();
        try (SimulatedAgentNode node = SimulatedAgentNode.create(dir, 2, GPU_MEMORY)) {
            SimNode sim = node.sim();
            Path state = node.paths().state();
            int port = SimulatedAgentNode.freePort();
            KubeletSimulator kubelet = node.startKubelet();
            AgentJvm agent = node.boot(config(node, port, "kill"), AgentJvm.QUICK_START);
            KubeletSimulator.Admission attacker = kubelet.admit("team-a", "attacker", "main", RESOURCE, 500);
            KubeletSimulator.Admission victim = kubelet.admit("team-b", "victim", "main", RESOURCE, 500);
            Path attackerUsage =
                    state.resolve("allocations").resolve(id(attacker)).resolve(AllocationFiles.USAGE);
            Path victimUsage = state.resolve("allocations").resolve(id(victim)).resolve(AllocationFiles.USAGE);
            String workload = sim.program("omai-workload").toString();
            Process holder = start(sim, attacker, workload, "alloc", "alloc", Long.toString(GIB), "sleep", "600");
            Process bystander = start(sim, victim, workload, "alloc", "alloc", Long.toString(GIB), "sleep", "600");
            holding(agent, () -> reserved(attackerUsage) == GIB && reserved(victimUsage) == GIB);
            // the reaper has mapped the holder's slot to its host pid before the attack
            await().atMost(PATIENCE).until(() -> hostPidKnown(attackerUsage));

            attack(
                    "zero the total while holding 1 GiB (kill)",
                    sim,
                    attacker,
                    "dd if=/dev/zero of=/run/omai/usage bs=1"
                            + " seek=" + (ShmLayout.USAGE_DEVICES_OFFSET + offset(USAGE_DEVICE, "bytes_reserved"))
                            + " count=8 conv=notrunc 2>/dev/null",
                    "usage_tampered",
                    port,
                    agent);

            assertThat(holder.waitFor(10, TimeUnit.SECONDS))
                    .as("the tamperer's process got SIGKILL")
                    .isTrue();
            assertThat(holder.exitValue()).isEqualTo(137);
            assertThat(agent.log()).contains("action=kill").contains("killed host pids [" + holder.pid() + "]");
            assertThat(bystander.isAlive())
                    .as("the other tenant's process lives on")
                    .isTrue();
            assertThat(get(port, "/healthz").statusCode()).isEqualTo(200);
        }
    }

    /** Waits for the workloads to hold their memory; on timeout says what the agent and the workloads said. */
    private void holding(AgentJvm agent, java.util.concurrent.Callable<Boolean> condition) throws IOException {
        try {
            await().atMost(PATIENCE).until(condition);
        } catch (org.awaitility.core.ConditionTimeoutException e) {
            StringBuilder said = new StringBuilder();
            try (var outputs =
                    Files.list(dir).filter(p -> p.getFileName().toString().startsWith("workload-"))) {
                for (Path out : outputs.toList()) {
                    said.append(out.getFileName())
                            .append(": ")
                            .append(Files.readString(out))
                            .append('\n');
                }
            }
            String log = agent.log();
            throw new AssertionError(
                    "workloads never held their memory\n" + said + "agent log (tail):\n"
                            + log.substring(Math.max(0, log.length() - 6000)),
                    e);
        }
    }

    private static boolean hostPidKnown(Path usage) throws IOException {
        try (FileChannel ch = FileChannel.open(usage, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(b, slotAt(0) + offset(USAGE_SLOT, "host_pid"));
            return b.getInt(0) != 0;
        }
    }

    /** Runs the attack inside the attacker's container and waits for its finding: metric and log line. */
    private void attack(
            String name,
            SimNode sim,
            KubeletSimulator.Admission attacker,
            String shell,
            String reason,
            int port,
            AgentJvm agent)
            throws Exception {
        String[] labels = {"finding=\"" + reason + "\"", "namespace=\"team-a\"", "pod=\"attacker\""};
        double before = value(scrape(port), "omai_audit_findings_total", labels);
        long started = System.nanoTime();
        SimNode.Run run = run(sim, attacker, "/bin/sh", "-c", shell);
        assertThat(run.exitCode()).as(name + ": " + run.stderr()).isZero();
        await().atMost(Duration.ofSeconds(10))
                .pollInterval(Duration.ofMillis(50))
                .until(() -> value(scrape(port), "omai_audit_findings_total", labels) > before);
        detectionMillis.put(name, (System.nanoTime() - started) / 1_000_000);
        assertThat(agent.log()).contains("pod=team-a/attacker");
        assertThat(agent.log())
                .contains(reason.equals("usage_tampered") ? "event=usage_tampered" : "event=usage_slots_exhausted");
    }

    /** The other tenant: heartbeat fresh, grants growing, a killed process reclaimed within 2 s, probes answering. */
    private void otherTenantIsUnharmed(
            SimNode sim, KubeletSimulator.Admission victim, Path victimDir, String workload, int port)
            throws Exception {
        try (AllocationFiles files = AllocationFiles.openReadOnly(victimDir)) {
            long heartbeat = files.control().read().heartbeatNs();
            assertThat(MonotonicClock.nanos() - heartbeat).as("heartbeat age").isLessThan(2_000_000_000L);
            long grant = files.control().tokenGrant(0);
            await().atMost(Duration.ofSeconds(2)).until(() -> files.control().tokenGrant(0) > grant);
        }
        Path usage = victimDir.resolve(AllocationFiles.USAGE);
        Process doomed = start(sim, victim, workload, "alloc", "alloc", Long.toString(GIB / 4), "sleep", "600");
        await().atMost(PATIENCE).until(() -> reserved(usage) == GIB + GIB / 4);
        doomed.destroyForcibly();
        long killed = System.nanoTime();
        await().atMost(Duration.ofSeconds(2))
                .pollInterval(Duration.ofMillis(20))
                .until(() -> reserved(usage) == GIB);
        System.out.printf("adversarial victim_reclaim_ms=%d%n", (System.nanoTime() - killed) / 1_000_000);
        assertThat(get(port, "/metrics").statusCode()).isEqualTo(200);
        assertThat(get(port, "/healthz").statusCode()).isEqualTo(200);
    }

    private Process start(SimNode sim, KubeletSimulator.Admission admission, String... command) throws IOException {
        Process process = launch(sim, admission, command)
                .redirectErrorStream(true)
                .redirectOutput(
                        dir.resolve("workload-" + processes.size() + ".out").toFile())
                .start();
        processes.add(process);
        return process;
    }

    private SimNode.Run run(SimNode sim, KubeletSimulator.Admission admission, String... command) throws Exception {
        Process process = launch(sim, admission, command).start();
        String out = new String(process.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        String err = new String(process.getErrorStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertThat(process.waitFor(60, TimeUnit.SECONDS)).isTrue();
        return new SimNode.Run(process.exitValue(), SimNode.parse(out), out, err);
    }

    private ProcessBuilder launch(SimNode sim, KubeletSimulator.Admission admission, String... command) {
        Map<String, String> env = new HashMap<>(sim.env());
        env.put("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        if (launcher == null) {
            launcher = new ContainerLauncher(dir.resolve("launcher"));
        }
        return launcher.prepare(
                        admission.response(), ContainerLauncher.Isolation.MOUNT_NAMESPACE, env, List.of(command))
                .process();
    }

    private static String id(KubeletSimulator.Admission admission) {
        return admission.response().getEnvsMap().get("OMAI_ALLOCATION_ID");
    }

    private static long reserved(Path usage) throws IOException {
        if (Files.size(usage) < UsageRegion.FILE_SIZE) {
            return -1;
        }
        try (FileChannel ch = FileChannel.open(usage, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(b, ShmLayout.USAGE_DEVICES_OFFSET + offset(USAGE_DEVICE, "bytes_reserved"));
            return b.getLong(0);
        }
    }

    /** The operator's repair: the file's bytes as they were (same inode, so every mapping sees them). */
    private static void restore(Path usage, byte[] pristine) throws Exception {
        try (FileChannel ch = FileChannel.open(usage, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(pristine), 0);
        }
        Thread.sleep(1_200); // a reaper pass (500 ms) sees the file whole again, so the next attack is new
    }

    private static long slotAt(int slot) {
        return ShmLayout.USAGE_SLOTS_OFFSET + slot * USAGE_SLOT.byteSize();
    }

    /** The file with every free slot taken by a made-up process (alive or not, the shim refuses newcomers). */
    private static byte[] everySlotTaken(byte[] pristine) {
        ByteBuffer b = ByteBuffer.wrap(pristine.clone()).order(ByteOrder.LITTLE_ENDIAN);
        for (int s = 0; s < ShmLayout.MAX_SLOTS; s++) {
            int at = (int) slotAt(s);
            if (b.getInt(at + (int) offset(USAGE_SLOT, "pid")) == 0) {
                b.putInt(at + (int) offset(USAGE_SLOT, "pid"), 900_000 + s);
                b.putInt(at + (int) offset(USAGE_SLOT, "state"), ShmLayout.SLOT_ACTIVE);
                b.putLong(at + (int) offset(USAGE_SLOT, "start_time_ticks"), 1 + s);
            }
        }
        return b.array();
    }

    /** The file with one free slot claimed by a process that does not exist, holding 2^63 bytes. */
    private static byte[] forgedDeadSlot(byte[] pristine) {
        ByteBuffer b = ByteBuffer.wrap(pristine.clone()).order(ByteOrder.LITTLE_ENDIAN);
        for (int s = 0; s < ShmLayout.MAX_SLOTS; s++) {
            int at = (int) slotAt(s);
            if (b.getInt(at + (int) offset(USAGE_SLOT, "pid")) == 0) {
                b.putInt(at + (int) offset(USAGE_SLOT, "pid"), 999_999);
                b.putInt(at + (int) offset(USAGE_SLOT, "state"), ShmLayout.SLOT_ACTIVE);
                b.putLong(at + (int) offset(USAGE_SLOT, "start_time_ticks"), 1);
                b.putLong(
                        at + (int) (offset(USAGE_SLOT, "devices") + offset(USAGE_SLOT_DEVICE, "bytes_in_use")),
                        Long.MIN_VALUE);
                return b.array();
            }
        }
        throw new AssertionError("no free slot to forge");
    }

    private HttpResponse<String> get(int port, String path) throws Exception {
        return http.send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                        .timeout(Duration.ofSeconds(10))
                        .GET()
                        .build(),
                HttpResponse.BodyHandlers.ofString());
    }

    private String scrape(int port) throws Exception {
        HttpResponse<String> response = get(port, "/metrics");
        assertThat(response.statusCode()).as("/metrics answers").isEqualTo(200);
        return response.body();
    }

    private static double value(String scrape, String name, String... labels) {
        return scrape.lines()
                .filter(line -> line.startsWith(name + "{"))
                .filter(line -> java.util.Arrays.stream(labels).allMatch(line::contains))
                .mapToDouble(line -> Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1)))
                .sum();
    }
}
