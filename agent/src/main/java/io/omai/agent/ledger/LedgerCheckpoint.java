package io.omai.agent.ledger;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.omai.placement.MilliGpu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The ledger on disk: versioned JSON with a SHA-256 checksum of its allocations. Written atomically (temp file,
 * fsync, rename, fsync of the directory), so a crash leaves the old or the new checkpoint, never half of one.
 *
 * <p>Version 2 adds each allocation's {@code claim} (pod, container, tenant, memory quota). Version 1 files (no
 * claims) are still read: their allocations' claims are unknown, and the next write stores version 2. An entry
 * without a claim is written exactly as version 1 wrote it, so its checksum is computed the same way.
 *
 * <p>The file is untrusted input: anyone with access to the host path may have edited it and recomputed the
 * checksum. Reading never fails. A file that cannot be used at all (unreadable, not a regular file, not JSON, an
 * unknown version, a checksum that does not match) is kept aside as {@code ledger.json.corrupt-<millis>} and the
 * ledger starts empty, to be rebuilt from PodResources. Otherwise every entry is checked on its own (see
 * {@link #validate}); one that fails is set aside into {@code ledger.json.rejected-<millis>} with its reason and the
 * others are loaded. No string from the file is ever used as a path: an entry's name must be the one its device
 * IDs derive.
 */
final class LedgerCheckpoint {
    private static final Logger log = LoggerFactory.getLogger(LedgerCheckpoint.class);
    static final int VERSION = 2;
    /** Versions this agent reads. */
    static final Set<Integer> READABLE = Set.of(1, 2);
    /** Longest owner or claim field accepted: namespace (63) + pod (253) + container (63) and separators. */
    static final int MAX_TEXT = 400;

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES);

    /** The file's shape. {@code checksum} is "sha256:" + hex over the JSON of {@code allocations}. */
    record FileFormat(int version, String checksum, List<Entry> allocations) {}

    /** One allocation as stored; {@code claim} absent in version 1 and for allocations of unknown pods. */
    record Entry(
            String id,
            List<String> deviceIds,
            String createdAt,
            String owner,
            @JsonInclude(JsonInclude.Include.NON_NULL) ClaimEntry claim) {}

    /** An allocation's {@link AllocationClaim} as stored. */
    record ClaimEntry(
            String podUid,
            String namespace,
            String pod,
            String container,
            String tenant,
            long memoryBytesPerGpu,
            // absent for the device-plugin path, so those entries (and their checksum) are as before
            @JsonInclude(JsonInclude.Include.NON_EMPTY) String draClaimUid) {
        static ClaimEntry of(AllocationClaim claim) {
            return claim.equals(AllocationClaim.UNKNOWN)
                    ? null
                    : new ClaimEntry(
                            claim.podUid(),
                            claim.namespace(),
                            claim.pod(),
                            claim.container(),
                            claim.tenant(),
                            claim.memoryBytesPerGpu(),
                            claim.draClaimUid());
        }

        AllocationClaim toClaim() {
            return new AllocationClaim(podUid, namespace, pod, container, tenant, memoryBytesPerGpu, draClaimUid);
        }
    }

    /** An entry not loaded, as it was in the file, and why. */
    record SetAside(JsonNode entry, String reason) {}

    /** An entry loaded with a correction (e.g. a creation time in the future), and what was corrected. */
    record Repaired(Allocation allocation, String correction) {}

    /**
     * What reading found.
     *
     * @param allocations the entries that passed, in file order (repaired ones included, corrected)
     * @param setAside entries not loaded, with reasons
     * @param repaired entries loaded with a correction
     * @param unusable why the whole file could not be used, or null
     * @param keptAside where the unusable file or the set-aside entries were kept, or null
     */
    record Contents(
            List<Allocation> allocations,
            List<SetAside> setAside,
            List<Repaired> repaired,
            String unusable,
            Path keptAside) {
        /** Whether the file on disk differs from what was loaded, so it should be rewritten. */
        boolean needsRewrite() {
            return unusable != null || !setAside.isEmpty() || !repaired.isEmpty();
        }
    }

    private final Path file;

    LedgerCheckpoint(Path file) {
        this.file = file;
    }

    Path file() {
        return file;
    }

    /** The stored allocations that pass validation; never throws (see the class comment). */
    Contents read(Instant now) {
        if (!Files.exists(file, LinkOption.NOFOLLOW_LINKS)) {
            return new Contents(List.of(), List.of(), List.of(), null, null);
        }
        if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) {
            return unusable("is not a regular file (a directory or a link); expected the ledger's JSON file");
        }
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (IOException e) {
            return unusable("cannot be read (" + e + ")");
        }
        JsonNode root;
        try {
            root = JSON.readTree(bytes);
        } catch (JacksonException e) {
            return unusable("is not JSON (" + e.getOriginalMessage() + ")");
        } catch (IOException e) {
            return unusable("cannot be parsed (" + e.getMessage() + ")");
        }
        if (root == null || !root.isObject()) {
            return unusable("is not a JSON object; expected {\"version\":" + VERSION + ",\"checksum\":...,"
                    + "\"allocations\":[...]}");
        }
        JsonNode version = root.get("version");
        if (version == null || !version.isInt() || !READABLE.contains(version.intValue())) {
            return unusable("has version " + version + "; expected one of " + new TreeSet<>(READABLE));
        }
        JsonNode entries = root.get("allocations");
        if (entries == null || !entries.isArray()) {
            return unusable("has no allocations list");
        }
        JsonNode storedChecksum = root.get("checksum");
        String expected = checksum(entries);
        if (storedChecksum == null || !expected.equals(storedChecksum.asText())) {
            return unusable("checksum " + storedChecksum + " does not match its content (" + expected + ")");
        }
        return validate((ArrayNode) entries, now);
    }

    /**
     * Checks every entry as untrusted input: a known shape; device IDs of the form {@code <gpu-uuid>-m<slot>},
     * distinct, on one GPU (fewer than 1000) or whole GPUs (1000 each, at most the control file's device count);
     * a name equal to the one its IDs derive (so it can name a directory); no name or device ID already taken by
     * an earlier entry; a creation time that parses (one in the future is set to now, or it would never be
     * released); owner and claim texts without control characters and of sane length. Whether the GPUs exist is
     * for the ledger to decide (allocations on a missing GPU are kept).
     */
    private Contents validate(ArrayNode entries, Instant now) {
        List<Allocation> loaded = new ArrayList<>();
        List<SetAside> setAside = new ArrayList<>();
        List<Repaired> repaired = new ArrayList<>();
        Set<String> names = new HashSet<>();
        Map<MilliGpuId, String> taken = new HashMap<>();
        for (JsonNode node : entries) {
            Allocation allocation;
            String correction = null;
            try {
                Entry entry = JSON.treeToValue(node, Entry.class);
                if (entry == null) {
                    throw new IllegalArgumentException("the entry is null; expected an allocation object");
                }
                List<MilliGpuId> ids = deviceIds(entry.deviceIds());
                String derived = AllocationLedger.allocationId(ids);
                if (!derived.equals(entry.id())) {
                    throw new IllegalArgumentException(
                            "id '" + entry.id() + "' is not the name its device IDs " + "derive; expected " + derived);
                }
                if (entry.createdAt() == null) {
                    throw new IllegalArgumentException("createdAt is missing; expected an ISO-8601 instant");
                }
                Instant createdAt = Instant.parse(entry.createdAt());
                if (createdAt.isAfter(now)) {
                    correction = "createdAt " + createdAt + " is in the future; set to " + now;
                    createdAt = now;
                }
                checkText("owner", entry.owner());
                AllocationClaim claim = AllocationClaim.UNKNOWN;
                if (entry.claim() != null) {
                    ClaimEntry c = entry.claim();
                    checkText("claim.podUid", c.podUid());
                    checkText("claim.namespace", c.namespace());
                    checkText("claim.pod", c.pod());
                    checkText("claim.container", c.container());
                    checkText("claim.tenant", c.tenant());
                    if (c.draClaimUid() != null) {
                        checkText("claim.draClaimUid", c.draClaimUid());
                    }
                    claim = c.toClaim();
                }
                if (!names.add(derived)) {
                    throw new IllegalArgumentException("allocation " + derived + " appears twice; the first is kept");
                }
                for (MilliGpuId id : ids) {
                    String holder = taken.get(id);
                    if (holder != null) {
                        names.remove(derived);
                        throw new IllegalArgumentException("device ID " + id + " already belongs to allocation "
                                + holder + "; an ID belongs to one allocation, the first is kept");
                    }
                }
                ids.forEach(id -> taken.put(id, derived));
                allocation = new Allocation(derived, ids, createdAt, entry.owner(), claim);
            } catch (JacksonException e) {
                setAside.add(new SetAside(node, "not an allocation entry: " + e.getOriginalMessage()));
                continue;
            } catch (IllegalArgumentException | DateTimeParseException e) {
                setAside.add(new SetAside(node, e.getMessage()));
                continue;
            }
            loaded.add(allocation);
            if (correction != null) {
                repaired.add(new Repaired(allocation, correction));
            }
        }
        Path aside = null;
        if (!setAside.isEmpty() || !repaired.isEmpty()) {
            aside = keepEntriesAside(setAside, repaired);
        }
        for (SetAside entry : setAside) {
            log.warn(
                    "event=checkpoint_entry_set_aside file={} kept_in={} reason=\"{}\" entry=\"{}\"",
                    file,
                    aside,
                    entry.reason(),
                    abbreviate(entry.entry()));
        }
        for (Repaired entry : repaired) {
            log.warn(
                    "event=checkpoint_entry_repaired file={} allocation={} correction=\"{}\"",
                    file,
                    entry.allocation().id(),
                    entry.correction());
        }
        return new Contents(List.copyOf(loaded), List.copyOf(setAside), List.copyOf(repaired), null, aside);
    }

    /** Known, distinct IDs forming one share of one GPU or whole GPUs; sorted. */
    private static List<MilliGpuId> deviceIds(List<String> raw) {
        if (raw == null || raw.isEmpty()) {
            throw new IllegalArgumentException(
                    "deviceIds is missing or empty; expected at least one " + "<gpu-uuid>-m<slot>");
        }
        Set<MilliGpuId> distinct = new HashSet<>();
        Map<String, Integer> perGpu = new LinkedHashMap<>();
        for (String text : raw) {
            MilliGpuId id = MilliGpuId.parse(text);
            if (id.uuid().length() > MilliGpuId.maxUuidLength()
                    || !id.uuid().chars().allMatch(ch -> ch > 0x20 && ch < 0x7f && ch != '/')) {
                throw new IllegalArgumentException("device ID '" + text + "' names GPU '" + id.uuid()
                        + "', which is not a GPU UUID (printable ASCII without '/', at most "
                        + MilliGpuId.maxUuidLength() + " characters)");
            }
            if (!distinct.add(id)) {
                throw new IllegalArgumentException("device ID " + id + " appears twice");
            }
            perGpu.merge(id.uuid(), 1, Integer::sum);
        }
        if (perGpu.size() > 1 && perGpu.values().stream().anyMatch(n -> n != MilliGpu.PER_GPU)) {
            throw new IllegalArgumentException("device IDs span GPUs " + perGpu + " (milli per GPU); expected one "
                    + "GPU, or whole GPUs of " + MilliGpu.PER_GPU + " IDs each");
        }
        if (perGpu.size() > io.omai.agent.quota.shm.ShmLayout.MAX_DEVICES) {
            throw new IllegalArgumentException("device IDs name " + perGpu.size() + " GPUs; at most "
                    + io.omai.agent.quota.shm.ShmLayout.MAX_DEVICES + " fit one allocation");
        }
        List<MilliGpuId> sorted = new ArrayList<>(distinct);
        sorted.sort(null);
        return sorted;
    }

    private static void checkText(String field, String value) {
        if (value == null) {
            return;
        }
        if (value.length() > MAX_TEXT || value.chars().anyMatch(Character::isISOControl)) {
            throw new IllegalArgumentException(field + " '" + abbreviate(value) + "' has control characters or "
                    + "more than " + MAX_TEXT + " characters; expected a Kubernetes name");
        }
    }

    private static String abbreviate(Object value) {
        String text = String.valueOf(value).replaceAll("\\p{Cntrl}", "?").replace('"', '\'');
        return text.length() > 200 ? text.substring(0, 200) + "..." : text;
    }

    /** Writes the set-aside and repaired entries beside the checkpoint; returns that file, or null if it failed. */
    private Path keepEntriesAside(List<SetAside> setAside, List<Repaired> repaired) {
        Path aside = file.resolveSibling(file.getFileName() + ".rejected-" + System.currentTimeMillis());
        ObjectNode root = JSON.createObjectNode();
        root.put("checkpoint", file.toString());
        ArrayNode list = root.putArray("setAside");
        setAside.forEach(s -> list.addObject().put("reason", s.reason()).set("entry", s.entry()));
        ArrayNode fixed = root.putArray("repaired");
        repaired.forEach(
                r -> fixed.addObject().put("allocation", r.allocation().id()).put("correction", r.correction()));
        try {
            Files.write(
                    aside,
                    JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(root),
                    StandardOpenOption.CREATE_NEW,
                    StandardOpenOption.WRITE);
            return aside;
        } catch (IOException e) {
            log.error("event=checkpoint_entries_not_kept file={} error=\"{}\"", aside, e.toString());
            return null;
        }
    }

    /** Keeps the whole file aside and answers an empty ledger. */
    private Contents unusable(String problem) {
        Path aside = file.resolveSibling(file.getFileName() + ".corrupt-" + System.currentTimeMillis());
        try {
            Files.move(file, aside, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            log.error("event=checkpoint_not_kept_aside file={} error=\"{}\"", file, e.toString());
            aside = null;
        }
        log.error(
                "event=checkpoint_unusable file={} kept_aside={} reason=\"{}\" detail=\"starting with an empty "
                        + "ledger; what containers hold is adopted from PodResources\"",
                file,
                aside,
                abbreviate(problem));
        return new Contents(List.of(), List.of(), List.of(), problem, aside);
    }

    /** Replaces the checkpoint with these allocations, atomically and durably. */
    void write(List<Allocation> allocations) throws IOException {
        List<Entry> entries = allocations.stream()
                .map(a -> new Entry(
                        a.id(), a.deviceIdStrings(), a.createdAt().toString(), a.owner(), ClaimEntry.of(a.claim())))
                .toList();
        byte[] bytes = JSON.writerWithDefaultPrettyPrinter()
                .writeValueAsBytes(new FileFormat(VERSION, checksum(JSON.valueToTree(entries)), entries));
        Path temp = file.resolveSibling(file.getFileName() + ".tmp");
        // A fresh file: an existing temp (a link someone planted) is removed, never followed.
        Files.deleteIfExists(temp);
        try (FileChannel channel = FileChannel.open(
                temp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS)) {
            ByteBuffer buffer = ByteBuffer.wrap(bytes);
            while (buffer.hasRemaining()) {
                channel.write(buffer);
            }
            channel.force(true);
        }
        try {
            Files.move(temp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            throw new IOException("cannot replace " + file + " atomically: " + e.getMessage(), e);
        }
        try (FileChannel directory = FileChannel.open(file.getParent(), StandardOpenOption.READ)) {
            directory.force(true); // the rename itself must survive a crash
        }
    }

    /** Over the compact JSON of the entries as they are in the file (field order as written). */
    private static String checksum(JsonNode entries) {
        try {
            byte[] canonical = JSON.writeValueAsBytes(entries);
            return "sha256:"
                    + HexFormat.of()
                            .formatHex(MessageDigest.getInstance("SHA-256").digest(canonical));
        } catch (IOException | NoSuchAlgorithmException e) {
            throw new IllegalStateException("cannot compute the ledger checksum", e);
        }
    }
}
