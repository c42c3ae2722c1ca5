package io.omai.harness.contract;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.HeldDevices;
import io.omai.simulator.launcher.AgentJvm;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.MessageDigest;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.function.Consumer;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The checkpoint is untrusted input. Truncated, corrupt, wrong-version files, path-like names, duplicate and
 * overlapping entries, entries on GPUs the node lacks, absurd times, links planted in the state directory: the
 * ledger opens every time, loads exactly the entries that are sound, and never touches a path outside its state
 * directory (a sentinel tree beside it, which the bad entries aim at, stays byte for byte as it was, through
 * open, reconciliation, release and close). One case runs through the real agent process.
 */
class CheckpointFuzzTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String GPU0 = "GPU-f0220000-0000-4000-8000-000000000000";
    private static final String GPU1 = "GPU-f0220000-0000-4000-8000-000000000001";
    private static final String GONE = "GPU-f0220000-0000-4000-8000-0000000000ff";
    private static final String GONE2 = "GPU-f0220000-0000-4000-8000-0000000000fe";
    private static final List<GpuDevice> GPUS =
            List.of(new GpuDevice(0, GPU0, "fuzz", 0, 16L << 30, 0), new GpuDevice(1, GPU1, "fuzz", 1, 16L << 30, 0));

    @TempDir
    Path root;

    private int cases;

    // ---- checkpoint construction --------------------------------------------------------------------------

    static List<String> ids(String gpu, int from, int count) {
        return IntStream.range(from, from + count)
                .mapToObj(slot -> gpu + "-m" + slot)
                .toList();
    }

    /** The name the agent derives from device IDs: a- and 16 hex digits of SHA-256 over the sorted IDs. */
    static String name(List<String> ids) {
        List<String> sorted = new ArrayList<>(ids);
        sorted.sort(Comparator.comparing((String id) -> id.substring(0, id.lastIndexOf("-m")))
                .thenComparingInt(id -> Integer.parseInt(id.substring(id.lastIndexOf("-m") + 2))));
        try {
            MessageDigest digest = MessageDigest.getInstance("SHA-256");
            for (String id : sorted) {
                digest.update((id + "\n").getBytes(StandardCharsets.US_ASCII));
            }
            return "a-" + HexFormat.of().formatHex(digest.digest(), 0, 8);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    static ObjectNode entry(List<String> ids, String createdAt) {
        ObjectNode entry = JSON.createObjectNode();
        entry.put("id", name(ids));
        ArrayNode list = entry.putArray("deviceIds");
        ids.forEach(list::add);
        entry.put("createdAt", createdAt);
        entry.put("owner", "");
        return entry;
    }

    static ObjectNode entry(List<String> ids) {
        return entry(ids, "2026-01-01T00:00:00Z");
    }

    /** A version-2 checkpoint of these entries with the checksum recomputed, as an attacker would. */
    static byte[] checkpoint(List<? extends JsonNode> entries) throws IOException {
        ArrayNode allocations = JSON.createArrayNode();
        entries.forEach(allocations::add);
        ObjectNode file = JSON.createObjectNode();
        file.put("version", 2);
        try {
            file.put(
                    "checksum",
                    "sha256:"
                            + HexFormat.of()
                                    .formatHex(MessageDigest.getInstance("SHA-256")
                                            .digest(JSON.writeValueAsBytes(allocations))));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
        file.set("allocations", allocations);
        return JSON.writeValueAsBytes(file);
    }

    // ---- running one case ------------------------------------------------------------------------------------

    /** What a case's ledger loaded. */
    record Outcome(List<Allocation> served, List<Allocation> onMissingGpus, Path state) {
        List<String> servedNames() {
            return served.stream().map(Allocation::id).sorted().toList();
        }
    }

    /**
     * A fresh case directory holding {@code state/} and the sentinel {@code victim/} beside it; {@code prepare}
     * writes the state; then the ledger opens, reconciles (nothing held: everything is released), and closes.
     */
    private Outcome run(Consumer<Path> prepare) throws Exception {
        Path dir = Files.createDirectories(root.resolve("case-" + ++cases));
        Path victim = sentinel(dir.resolve("victim"));
        Map<String, String> before = snapshot(victim);
        Path state = Files.createDirectories(dir.resolve("state"));
        prepare.accept(state);
        Outcome outcome;
        try (AllocationLedger ledger =
                AllocationLedger.open(GPUS, ConfigLoader.defaults().sharing(), state, Clock.systemUTC())) {
            outcome = new Outcome(ledger.allocations(), ledger.allocationsOnMissingGpus(), state);
            for (Allocation allocation : ledger.allocations()) {
                assertThat(ledger.directory(allocation).normalize()).startsWith(state);
                ledger.spec(allocation); // what quotas, metrics and the node snapshot ask of every served one
            }
            ledger.reconcile(List.of(new HeldDevices("ns/p/c", ids(GPU1, 900, 10))), Duration.ZERO);
            assertThat(ledger.flush(Duration.ofSeconds(10))).isTrue();
        }
        assertThat(snapshot(victim))
                .as("the sentinel beside the state directory")
                .isEqualTo(before);
        try (Stream<Path> beside = Files.list(dir)) {
            assertThat(beside.map(p -> p.getFileName().toString())).containsExactlyInAnyOrder("state", "victim");
        }
        return outcome;
    }

    private static void write(Path file, byte[] bytes) {
        try {
            Files.write(file, bytes);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    /** A tree that looks like an allocation directory, so a followed link would find files to write or delete. */
    private static Path sentinel(Path dir) throws IOException {
        Files.createDirectories(dir.resolve("sub"));
        Files.writeString(dir.resolve("control"), "not the agent's");
        Files.writeString(dir.resolve("usage"), "not the agent's either");
        Files.writeString(dir.resolve("sub/keep"), "precious");
        return dir;
    }

    private static Map<String, String> snapshot(Path dir) throws IOException {
        Map<String, String> files = new TreeMap<>();
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path path : walk.toList()) {
                BasicFileAttributes attributes =
                        Files.readAttributes(path, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
                String content = attributes.isRegularFile() ? Files.readString(path) : "(dir)";
                files.put(dir.relativize(path).toString(), content + " @" + attributes.lastModifiedTime());
            }
        }
        return files;
    }

    private static void whole(Path state, String text) {
        write(state.resolve("ledger.json"), text.getBytes(StandardCharsets.UTF_8));
    }

    private static void entries(Path state, JsonNode... entries) {
        try {
            write(state.resolve("ledger.json"), checkpoint(List.of(entries)));
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    private static List<String> setAsideFiles(Path state, String kind) throws IOException {
        try (Stream<Path> files = Files.list(state)) {
            return files.map(p -> p.getFileName().toString())
                    .filter(n -> n.startsWith("ledger.json." + kind + "-"))
                    .toList();
        }
    }

    // ---- the cases -------------------------------------------------------------------------------------------

    @Test
    void anUnusableFileIsKeptAsideAndTheLedgerStartsEmpty() throws Exception {
        byte[] valid = checkpoint(List.of(entry(ids(GPU0, 0, 100)), entry(ids(GPU1, 0, 1000))));
        List<Consumer<Path>> unusable = new ArrayList<>(List.of(
                state -> whole(state, ""),
                state -> whole(state, "{ not json"),
                state -> whole(state, "null"),
                state -> whole(state, "[]"),
                state -> whole(state, "{}"),
                state -> whole(
                        state, new String(valid, StandardCharsets.UTF_8).replace("\"version\":2", "\"version\":3")),
                state -> whole(
                        state, new String(valid, StandardCharsets.UTF_8).replace("\"version\":2", "\"version\":\"2\"")),
                state ->
                        whole(state, new String(valid, StandardCharsets.UTF_8).replace("-m99\"", "-m98\"")), // checksum
                state -> whole(state, "{\"version\":2,\"allocations\":[]}"),
                state -> whole(state, "{\"version\":2,\"checksum\":\"x\",\"allocations\":{}}"),
                state -> {
                    try {
                        Files.createDirectories(state.resolve("ledger.json/inside")); // a directory in its place
                    } catch (IOException e) {
                        throw new AssertionError(e);
                    }
                },
                state -> {
                    try { // a link to the sentinel's file: never read as ours, never written through
                        Files.createSymbolicLink(state.resolve("ledger.json"), state.resolveSibling("victim/control"));
                    } catch (IOException e) {
                        throw new AssertionError(e);
                    }
                }));
        for (int length = 0; length < valid.length; length += Math.max(1, valid.length / 12)) {
            byte[] truncated = java.util.Arrays.copyOf(valid, length);
            unusable.add(state -> write(state.resolve("ledger.json"), truncated));
        }
        for (Consumer<Path> prepare : unusable) {
            Outcome outcome = run(prepare);
            assertThat(outcome.served()).isEmpty();
            assertThat(setAsideFiles(outcome.state(), "corrupt")).hasSize(1);
            // the agent wrote a fresh, valid checkpoint in its place
            assertThat(Files.isRegularFile(outcome.state().resolve("ledger.json"), LinkOption.NOFOLLOW_LINKS))
                    .isTrue();
        }
    }

    @Test
    void eachBadEntryIsSetAsideWithItsReasonAndTheSoundOnesAreLoaded() throws Exception {
        ObjectNode sound = entry(ids(GPU0, 0, 100));
        ObjectNode whole = entry(ids(GPU1, 0, 1000));
        String victimRelative = "../../victim";
        List<ObjectNode> bad = new ArrayList<>();
        for (String pathLike : List.of(
                victimRelative,
                "../victim",
                "/" + root,
                "..",
                ".",
                "a-../../victim",
                "a-0123456789abcdef/../../../victim")) {
            ObjectNode entry = entry(ids(GPU0, 500, 10));
            entry.put("id", pathLike);
            bad.add(entry);
        }
        bad.add((ObjectNode) JSON.readTree("{\"id\":\"a-0000000000000000\",\"createdAt\":\"2026-01-01T00:00:00Z\","
                + "\"owner\":\"\"}")); // no device IDs
        bad.add(entry(List.of()));
        bad.add(entry(List.of("../../victim-m1")));
        bad.add(entry(List.of(GPU0 + "-m1000")));
        bad.add(entry(List.of(GPU0 + "-m01")));
        bad.add(entry(List.of(GPU0 + "-m7", GPU0 + "-m7")));
        bad.add(entry(
                ids(GPU0, 300, 5).stream().map(id -> id.replace("GPU-", "GPU/")).toList()));
        List<String> spanning = new ArrayList<>(ids(GPU0, 600, 300));
        spanning.addAll(ids(GPU1, 600, 300));
        bad.add(entry(spanning)); // a share spanning two GPUs
        bad.add(entry(ids(GPU0, 50, 100))); // overlaps the sound entry
        bad.add(sound.deepCopy()); // a duplicate
        bad.add(entry(ids(GPU0, 700, 3), "yesterday"));
        bad.add(entry(ids(GPU0, 710, 3), null));
        ObjectNode control = entry(ids(GPU0, 720, 3));
        control.put("owner", "ns/pod\n2026 event=forged");
        bad.add(control);
        ObjectNode negative = entry(ids(GPU0, 730, 3));
        negative.putObject("claim")
                .put("podUid", "u")
                .put("namespace", "n")
                .put("pod", "p")
                .put("container", "c")
                .put("tenant", "t")
                .put("memoryBytesPerGpu", -1);
        bad.add(negative);
        ObjectNode unknown = entry(ids(GPU0, 740, 3));
        unknown.put("path", "../../victim");
        bad.add(unknown);

        List<JsonNode> all = new ArrayList<>(List.of(sound, whole));
        all.addAll(bad);
        all.add(JSON.nullNode());
        all.add(JSON.getNodeFactory().textNode("../../victim"));
        Outcome outcome = run(state -> write(state.resolve("ledger.json"), uncheckedCheckpoint(all)));

        assertThat(outcome.servedNames())
                .containsExactlyInAnyOrder(
                        sound.get("id").asText(), whole.get("id").asText());
        List<String> rejected = setAsideFiles(outcome.state(), "rejected");
        assertThat(rejected).hasSize(1);
        JsonNode kept =
                JSON.readTree(outcome.state().resolve(rejected.getFirst()).toFile());
        assertThat(kept.get("setAside")).hasSize(bad.size() + 2);
        kept.get("setAside").forEach(e -> assertThat(e.get("reason").asText()).isNotBlank());
        assertThat(kept.toString())
                .contains(
                        "is not the name its device IDs derive",
                        "appears twice",
                        "already belongs to allocation",
                        "span GPUs",
                        "deviceIds is missing",
                        "createdAt");
    }

    @Test
    void timesInTheFutureAreSetToNowSoTheEntryCanBeReleased() throws Exception {
        Outcome outcome = run(state -> entries(state, entry(ids(GPU0, 0, 10), "2099-01-01T00:00:00Z")));
        assertThat(outcome.served())
                .singleElement()
                .satisfies(a -> assertThat(a.createdAt()).isBefore(Instant.now().plusSeconds(1)));
        // released by the reconcile in run(): nobody holds it and the grace period is zero
        try (Stream<Path> left = Files.list(outcome.state().resolve("allocations"))) {
            assertThat(left.map(p -> p.getFileName().toString())).containsExactly(name(ids(GPU1, 900, 10)));
        }
    }

    @Test
    void entriesOnAGpuTheNodeDoesNotHaveAreKeptNotServed() throws Exception {
        ObjectNode lost = entry(ids(GONE, 0, 250));
        ObjectNode lostWhole =
                entry(java.util.stream.Stream.concat(ids(GPU0, 0, 1000).stream(), ids(GONE2, 0, 1000).stream())
                        .toList());
        Outcome outcome = run(state -> entries(state, lost, lostWhole, entry(ids(GPU1, 0, 10))));
        assertThat(outcome.served()).extracting(Allocation::id).containsExactly(name(ids(GPU1, 0, 10)));
        assertThat(outcome.onMissingGpus())
                .extracting(Allocation::id)
                .containsExactly(lost.get("id").asText(), lostWhole.get("id").asText());
    }

    @Test
    void linksPlantedInTheStateDirectoryAreNeverFollowed() throws Exception {
        List<String> ids = ids(GPU0, 0, 10);
        Outcome outcome = run(state -> {
            try {
                entries(state, entry(ids));
                Path victim = state.resolveSibling("victim");
                Files.createDirectories(state.resolve("allocations"));
                Files.createSymbolicLink(state.resolve("allocations").resolve(name(ids)), victim);
                Files.createSymbolicLink(state.resolve("allocations/a-1111111111111111"), victim);
                Files.createSymbolicLink(state.resolve("spares"), victim);
                Files.createDirectories(state.resolve("discarded"));
                Files.createSymbolicLink(state.resolve("discarded/x"), victim);
                Files.createSymbolicLink(state.resolve("ledger.json.tmp"), victim.resolve("control"));
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        });
        assertThat(outcome.servedNames()).containsExactly(name(ids));
        assertThat(Files.isDirectory(
                        outcome.state().resolve("allocations").resolve(name(ids)), LinkOption.NOFOLLOW_LINKS))
                .isFalse(); // released at the reconcile; the link never written through
    }

    @Test
    void randomMutationsNeverStopTheLedgerNorReachOutside() throws Exception {
        long seed = Long.getLong("omai.checkpointFuzz.seed", System.nanoTime());
        System.out.println("CheckpointFuzzTest seed=" + seed);
        Random random = new Random(seed);
        List<String> junk = List.of(
                "../../victim",
                "",
                "a-",
                "GPU-x-m1",
                "2099-12-31T23:59:59Z",
                "-999999999-01-01T00:00:00Z",
                "\u0000",
                "a-0000000000000000",
                GONE + "-m3");
        for (int round = 0; round < 60; round++) {
            List<JsonNode> entries = new ArrayList<>();
            for (int i = 0; i < 1 + random.nextInt(5); i++) {
                String gpu = List.of(GPU0, GPU1, GONE).get(random.nextInt(3));
                ObjectNode entry = entry(ids(gpu, random.nextInt(900), 1 + random.nextInt(100)));
                switch (random.nextInt(6)) {
                    case 0 -> entry.put("id", junk.get(random.nextInt(junk.size())));
                    case 1 -> entry.put("createdAt", junk.get(random.nextInt(junk.size())));
                    case 2 -> ((ArrayNode) entry.get("deviceIds")).add(junk.get(random.nextInt(junk.size())));
                    case 3 -> entry.put("owner", junk.get(random.nextInt(junk.size())));
                    default -> {}
                }
                entries.add(entry);
            }
            byte[] bytes = checkpoint(entries);
            if (random.nextInt(4) == 0) {
                bytes = java.util.Arrays.copyOf(bytes, random.nextInt(bytes.length));
            } else if (random.nextInt(4) == 0) {
                bytes[random.nextInt(bytes.length)] ^= (byte) (1 << random.nextInt(8));
            }
            byte[] file = bytes;
            Outcome outcome = run(state -> write(state.resolve("ledger.json"), file));
            List<String> all = new ArrayList<>();
            outcome.served().forEach(a -> all.addAll(a.deviceIdStrings()));
            outcome.onMissingGpus().forEach(a -> all.addAll(a.deviceIdStrings()));
            assertThat(all)
                    .as("seed %d round %d: no device ID in two allocations", seed, round)
                    .doesNotHaveDuplicates();
            outcome.served().forEach(a -> assertThat(a.id()).isEqualTo(name(a.deviceIdStrings())));
        }
    }

    /** As {@link #checkpoint} for entries that are not all objects. */
    private static byte[] uncheckedCheckpoint(List<JsonNode> entries) {
        try {
            return checkpoint(entries);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void theRealAgentStartsOnAHostileCheckpointAndRegisters() throws Exception {
        try (ContractNode node = new ContractNode(root.resolve("agent"), 1, AgentJvm.QUICK_START)) {
            Path victim = sentinel(node.root.resolve("victim"));
            Map<String, String> before = snapshot(victim);
            Files.createDirectories(node.stateDir);
            String gpu = node.sim.gpus().getFirst().uuid();
            ObjectNode pathLike = entry(ids(gpu, 0, 10));
            pathLike.put("id", "../../victim");
            ObjectNode sound = entry(ids(gpu, 100, 10));
            ObjectNode lost = entry(ids(GONE, 0, 10));
            Files.write(
                    node.stateDir.resolve("ledger.json"),
                    checkpoint(
                            List.of(pathLike, sound, sound, lost, entry(ids(gpu, 200, 10), "2099-01-01T00:00:00Z"))));
            AgentJvm agent = node.startAndRegister(Duration.ofSeconds(90));
            agent.awaitLog("event=ledger_opened", Duration.ofSeconds(5));
            assertThat(agent.log())
                    .contains(
                            "allocations=2 on_missing_gpus=1 set_aside=2 repaired=1",
                            "event=checkpoint_entry_set_aside",
                            "is not the name its device IDs derive",
                            "appears twice",
                            "event=allocation_gpu_missing");
            // nobody holds anything: after the grace period the sound entries are released, the lost one too
            ContractNode.sleep(ContractNode.GRACE.plus(ContractNode.RECONCILE.multipliedBy(5)));
            org.awaitility.Awaitility.await()
                    .atMost(Duration.ofSeconds(15))
                    .until(() -> node.checkpointAllocations().isEmpty());
            assertThat(agent.alive()).isTrue();
            assertThat(snapshot(victim)).isEqualTo(before);
            assertThat(agent.stop()).isIn(0, 143);
        }
    }
}
