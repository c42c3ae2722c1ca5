package io.omai.harness.contract;

import static io.omai.harness.contract.ContractNode.RESOURCE;
import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.grpc.ManagedChannel;
import io.omai.agent.deviceplugin.UnixSocketGrpc;
import io.omai.agent.deviceplugin.v1beta1.AllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateResponse;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginGrpc;
import io.omai.agent.deviceplugin.v1beta1.Mount;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.simulator.kubelet.PodResourcesTable.ContainerEntry;
import io.omai.simulator.launcher.AgentJvm;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The crash storm: the real agent process, SIGKILLed at random points of Allocate bursts (including the
 * overlap race: X allocated but never recorded by kubelet, Y overlapping X, SIGKILL right after Y is answered;
 * and a new pod on exactly a deleted pod's IDs, a takeover racing the reconcile that releases the departed record),
 * restarted each time. Every control file an Allocate names exists when the answer arrives (kubelet bind-mounts
 * it). After every restart, one reconcile and the grace period later: nothing kubelet recorded is lost, nothing is
 * duplicated, no directory exists that nobody holds, the files each container mounted are exactly the ones the
 * ledger tracks (same inode), and their heartbeat advances. The seed is printed; {@code -Domai.crashStorm.seed=N}
 * replays the operations and kill points (not the agent's own timing: reconcile rounds, where a timed kill lands).
 */
class CrashStormContractTest {
    private static final int KILLS = Integer.getInteger("omai.crashStorm.kills", 50);
    private static final Duration SETTLE = Duration.ofSeconds(20);
    /** {@code -Domai.crashStorm.aotCache=false}: every start loads its classes (to compare the cost). */
    private static final boolean AOT_CACHE =
            Boolean.parseBoolean(System.getProperty("omai.crashStorm.aotCache", "true"));

    @TempDir(cleanup = org.junit.jupiter.api.io.CleanupMode.ON_SUCCESS) // kept for a failure's post-mortem
    Path dir;

    /** A container as the test's kubelet recorded it: its IDs, the allocation and the control file it mounted. */
    private record Held(String pod, List<String> ids, String allocationId, Path control, Object inode) {}

    private final Map<String, Held> held = new ConcurrentHashMap<>(); // pod -> container, as PodResources says
    private final Map<String, List<String>> idsByGpu = new TreeMap<>();
    private int pods;
    private final Map<String, Integer> counts = new TreeMap<>();

    @Test
    void fiftySigkillsAtRandomPointsLoseNothingDuplicateNothingAndLeaveNoOrphans() throws Exception {
        long seed = Long.getLong("omai.crashStorm.seed", System.nanoTime());
        System.out.println("CrashStormContractTest seed=" + seed + " (-Domai.crashStorm.seed=" + seed + " replays)");
        Random random = new Random(seed);
        List<String> options = new ArrayList<>(AgentJvm.QUICK_START);
        options.add("-XX:+UseSerialGC"); // one GC thread: the 51 starts share two loaded cores
        try (ContractNode node = new ContractNode(dir, 2, options)) {
            for (var gpu : node.sim.gpus()) {
                idsByGpu.put(
                        gpu.uuid(),
                        IntStream.range(0, 1000)
                                .mapToObj(slot -> gpu.uuid() + "-m" + slot)
                                .toList());
            }
            // The 51 starts are almost all the storm's time, and mostly class loading: one start, stopped, writes
            // an AOT cache of what it loaded (JEP 514), which every start of the storm then maps. Each start is
            // still a whole new JVM; without a cache (not written) a start only runs slower.
            Path aotCache = dir.resolve("agent.aot");
            long trainingStart = System.nanoTime();
            if (AOT_CACHE) {
                node.startServing(Duration.ofSeconds(90), List.of("-XX:AOTCacheOutput=" + aotCache))
                        .stop();
            }
            List<String> cached = Files.isRegularFile(aotCache) ? List.of("-XX:AOTCache=" + aotCache) : List.of();
            System.out.printf(
                    "CrashStormContractTest aot_cache=%s seconds=%.1f%n",
                    !cached.isEmpty(), (System.nanoTime() - trainingStart) / 1e9);
            // Allocate is sent straight to the plugin socket, as kubelet's device manager does once registered;
            // not waiting for each registration round trip keeps 51 starts affordable.
            AgentJvm agent = node.startServing(Duration.ofSeconds(90), cached);
            long stormStart = System.nanoTime();
            long[] phases = new long[3]; // burst and kill, agent start, recovery checks
            for (int kill = 1; kill <= KILLS; kill++) {
                long t0 = System.nanoTime();
                try (Plugin plugin = new Plugin(node.pluginSocket)) {
                    burstAndKill(plugin, node, agent, random);
                }
                assertThat(agent.alive()).isFalse();
                long t1 = System.nanoTime();
                agent = node.startServing(Duration.ofSeconds(90), cached);
                long t2 = System.nanoTime();
                assertRecovered(node, agent, "after SIGKILL " + kill + " of " + KILLS + " (seed " + seed + ")");
                phases[0] += t1 - t0;
                phases[1] += t2 - t1;
                phases[2] += System.nanoTime() - t2;
            }
            System.out.printf(
                    "CrashStormContractTest kills=%d seconds=%.1f (bursts %.1f, starts %.1f, recovery "
                            + "checks %.1f) ops=%s%n",
                    KILLS,
                    (System.nanoTime() - stormStart) / 1e9,
                    phases[0] / 1e9,
                    phases[1] / 1e9,
                    phases[2] / 1e9,
                    counts);
            assertThat(counts.getOrDefault("race_answered", 0))
                    .as("the overlap race happened")
                    .isPositive();
            assertThat(counts.getOrDefault("killed_mid_request", 0))
                    .as("kills landed inside Allocate")
                    .isPositive();
            assertThat(counts.getOrDefault("reuse_answered", 0))
                    .as("a deleted pod's IDs were reused")
                    .isPositive();
            node.kubelet.awaitRegistration(RESOURCE, Duration.ofSeconds(30)); // the last one also registers
            assertThat(agent.stop()).isIn(0, 143);
        }
    }

    /** kubelet's side of Allocate, over the plugin's unix socket. */
    private static final class Plugin implements AutoCloseable {
        private final ManagedChannel channel;
        private final DevicePluginGrpc.DevicePluginBlockingStub stub;

        Plugin(Path socket) {
            channel = UnixSocketGrpc.channel(socket);
            stub = DevicePluginGrpc.newBlockingStub(channel);
        }

        ContainerAllocateResponse allocate(List<String> ids) {
            return stub.withDeadlineAfter(10, TimeUnit.SECONDS)
                    .allocate(AllocateRequest.newBuilder()
                            .addContainerRequests(
                                    ContainerAllocateRequest.newBuilder().addAllDevicesIds(ids))
                            .build())
                    .getContainerResponses(0);
        }

        @Override
        public void close() {
            UnixSocketGrpc.close(channel);
        }
    }

    /**
     * A burst of admissions, overlap races, pod deletions and new pods on a deleted pod's exact IDs. Even rounds: SIGKILL right after a randomly chosen
     * operation is answered (for a race, right after Y). Odd rounds: SIGKILL at a random moment from another
     * thread, usually inside a request.
     */
    private void burstAndKill(Plugin plugin, ContractNode node, AgentJvm agent, Random random) throws Exception {
        int operations = 3 + random.nextInt(6);
        boolean killAfterAnswer = random.nextBoolean();
        int killAfter = random.nextInt(operations);
        long killAtMillis = random.nextInt(60);
        Thread killer = null;
        if (!killAfterAnswer) {
            killer = Thread.ofPlatform().start(() -> {
                ContractNode.sleep(Duration.ofMillis(killAtMillis));
                try {
                    agent.kill();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
        }
        for (int op = 0; op < operations && agent.alive(); op++) {
            try {
                int choice = random.nextInt(10);
                if (choice < 2 && !held.isEmpty()) {
                    deletePod(node, random);
                } else if (choice < 4 && !held.isEmpty()) {
                    reuseDeparted(plugin, node, random);
                } else if (choice < 7) {
                    overlapRace(plugin, node, random);
                } else {
                    admit(plugin, node, randomFree(node, random, 20 + random.nextInt(280)), "admit");
                }
            } catch (io.grpc.StatusRuntimeException e) {
                count("killed_mid_request");
                break; // the agent died under the request: kubelet records nothing
            }
            if (killAfterAnswer && op == killAfter) {
                agent.kill();
            }
        }
        if (killer != null) {
            killer.join();
        }
        agent.kill();
    }

    /** X allocated, kubelet never records it (admission failed); Y takes some of X's IDs and is recorded. */
    private void overlapRace(Plugin plugin, ContractNode node, Random random) {
        List<String> x = randomFree(node, random, 20 + random.nextInt(200));
        plugin.allocate(x);
        count("race_x_answered");
        Set<String> yIds = new TreeSet<>(x.subList(0, 1 + random.nextInt(x.size())));
        String gpu = gpuOf(x.getFirst());
        for (String id : freeOn(gpu)) {
            if (yIds.size() >= x.size() + 10) {
                break;
            }
            if (!x.contains(id)) {
                yIds.add(id);
            }
        }
        admit(plugin, node, List.copyOf(yIds), "race");
    }

    private void admit(Plugin plugin, ContractNode node, List<String> ids, String kind) {
        ContainerAllocateResponse response = plugin.allocate(ids);
        count(kind + "_answered");
        String pod = "pod-" + ++pods;
        Path control = Path.of(response.getMountsList().stream()
                .filter(m -> m.getContainerPath().equals("/run/omai/control"))
                .map(Mount::getHostPath)
                .findFirst()
                .orElseThrow());
        Object inode = inode(control);
        if (inode instanceof String missing) { // a SIGKILL deletes nothing: the file was gone when answered
            throw new AssertionError("Allocate answered " + pod + " (" + kind + ", " + ids.size() + " IDs) with "
                    + control + ", which kubelet would bind-mount: " + missing);
        }
        // As kubelet: the container is recorded once Allocate has answered, whatever happens to the plugin after.
        held.put(pod, new Held(pod, List.copyOf(ids), response.getEnvsMap().get("OMAI_ALLOCATION_ID"), control, inode));
        node.kubelet.podResources().put(new ContainerEntry("storm", pod, "main", RESOURCE, ids));
    }

    private Held deletePod(ContractNode node, Random random) {
        List<String> names = new ArrayList<>(held.keySet());
        String pod = names.get(random.nextInt(names.size()));
        node.kubelet.podResources().removePod("storm", pod);
        count("pod_deleted");
        return held.remove(pod);
    }

    /**
     * A pod is deleted and a new one receives exactly its IDs, as kubelet does when its preferred allocation
     * picks the freed devices: a takeover with fresh files, racing the reconcile that releases the departed record.
     */
    private void reuseDeparted(Plugin plugin, ContractNode node, Random random) {
        Held departed = deletePod(node, random);
        admit(plugin, node, departed.ids(), "reuse");
    }

    /** {@code size} IDs no recorded container holds, on one GPU; frees the fullest pods' IDs when none has room. */
    private List<String> randomFree(ContractNode node, Random random, int size) {
        List<String> gpus = new ArrayList<>(idsByGpu.keySet());
        while (true) {
            java.util.Collections.shuffle(gpus, random);
            for (String gpu : gpus) {
                List<String> free = freeOn(gpu);
                if (free.size() >= size) {
                    int start = random.nextInt(free.size() - size + 1);
                    return List.copyOf(free.subList(start, start + size));
                }
            }
            // kubelet would refuse; the test deletes a pod instead (the agent is told through PodResources)
            String victim = held.keySet().iterator().next();
            node.kubelet.podResources().removePod("storm", victim);
            held.remove(victim);
            count("pod_deleted_for_room");
        }
    }

    private List<String> freeOn(String gpu) {
        Set<String> taken = new HashSet<>();
        held.values().forEach(h -> taken.addAll(h.ids()));
        return idsByGpu.get(gpu).stream().filter(id -> !taken.contains(id)).toList();
    }

    private static String gpuOf(String id) {
        return id.substring(0, id.lastIndexOf("-m"));
    }

    private void count(String what) {
        counts.merge(what, 1, Integer::sum);
    }

    private static Object inode(Path file) {
        try {
            return Files.readAttributes(file, BasicFileAttributes.class).fileKey();
        } catch (IOException e) {
            return "missing: " + e;
        }
    }

    /** Waits (at most {@link #SETTLE}) for the state the contract promises, then asserts it with a full account. */
    private void assertRecovered(ContractNode node, AgentJvm agent, String when) throws Exception {
        long deadline = System.nanoTime() + SETTLE.toNanos();
        List<String> problems = problems(node);
        while (!problems.isEmpty() && System.nanoTime() < deadline) {
            ContractNode.sleep(Duration.ofMillis(50));
            problems = problems(node);
        }
        assertThat(problems)
                .as("%s: lost, duplicated, orphaned or untracked; the agent logged:%n%s", when, agent.log())
                .isEmpty();
        assertHeartbeats(when, agent);
    }

    /** The agent serves the files each container mounted: their heartbeat advances (the compute loop's tick). */
    private void assertHeartbeats(String when, AgentJvm agent) throws Exception {
        Map<String, Long> first = new HashMap<>();
        for (Held container : held.values()) {
            first.put(container.pod(), heartbeat(container.control()));
        }
        long deadline = System.nanoTime() + SETTLE.toNanos();
        Set<String> stale = new TreeSet<>(first.keySet());
        while (!stale.isEmpty() && System.nanoTime() < deadline) {
            stale.removeIf(pod -> heartbeat(held.get(pod).control()) > first.get(pod));
            if (!stale.isEmpty()) {
                ContractNode.sleep(Duration.ofMillis(20));
            }
        }
        assertThat(stale)
                .as("%s: mounted control files without a heartbeat; the agent logged:%n%s", when, agent.log())
                .isEmpty();
    }

    private static long heartbeat(Path control) {
        try (AllocationFiles files = AllocationFiles.openReadOnly(control.getParent())) {
            return files.control().read().heartbeatNs();
        } catch (IOException | RuntimeException e) {
            return Long.MIN_VALUE;
        }
    }

    private List<String> problems(ContractNode node) throws IOException {
        List<String> problems = new ArrayList<>();
        Map<String, List<String>> tracked = new LinkedHashMap<>();
        for (JsonNode allocation : node.checkpointAllocations()) {
            List<String> ids = new ArrayList<>();
            allocation.get("deviceIds").forEach(id -> ids.add(id.asText()));
            if (tracked.put(allocation.get("id").asText(), ids) != null) {
                problems.add("duplicated: allocation " + allocation.get("id").asText() + " twice in the checkpoint");
            }
        }
        Map<String, String> deviceOwner = new HashMap<>();
        tracked.forEach((id, ids) -> ids.forEach(device -> {
            String other = deviceOwner.put(device, id);
            if (other != null) {
                problems.add("duplicated: device " + device + " in " + other + " and " + id);
            }
        }));
        Set<String> expected = new TreeSet<>();
        for (Held container : held.values()) {
            expected.add(container.allocationId());
            List<String> ids = tracked.get(container.allocationId());
            if (ids == null) {
                problems.add("lost: " + container.pod() + " holds " + container.allocationId()
                        + ", which the ledger does not track");
            } else if (!new TreeSet<>(ids).equals(new TreeSet<>(container.ids()))) {
                problems.add("mismatch: " + container.allocationId() + " tracks other IDs than " + container.pod()
                        + " holds");
            }
            Object now = inode(container.control());
            if (!now.equals(container.inode())) {
                problems.add("untracked files: " + container.pod() + " mounted " + container.control() + " (inode "
                        + container.inode() + "), now " + now);
            }
        }
        for (String id : tracked.keySet()) {
            if (!expected.contains(id)) {
                problems.add("held by nobody but tracked: " + id);
            }
        }
        Set<String> directories = list(node.stateDir.resolve("allocations"));
        if (!directories.equals(expected)) {
            Set<String> orphans = new TreeSet<>(directories);
            orphans.removeAll(expected);
            Set<String> missing = new TreeSet<>(expected);
            missing.removeAll(directories);
            problems.add("directories: orphans " + orphans + ", missing " + missing);
        }
        Set<String> discarded = list(node.stateDir.resolve("discarded"));
        if (!discarded.isEmpty()) {
            problems.add("not yet deleted: discarded/" + discarded);
        }
        return problems;
    }

    private static Set<String> list(Path directory) throws IOException {
        if (!Files.isDirectory(directory)) {
            return Set.of();
        }
        try (Stream<Path> entries = Files.list(directory)) {
            return new TreeSet<>(entries.map(p -> p.getFileName().toString()).toList());
        }
    }
}
