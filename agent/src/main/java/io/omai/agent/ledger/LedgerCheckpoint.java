package io.omai.agent.ledger;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * The ledger on disk: versioned JSON with a SHA-256 checksum of its allocations. Written atomically (temp file,
 * fsync, rename, fsync of the directory), so a crash leaves the old or the new checkpoint, never half of one.
 *
 * <p>Version 2 adds each allocation's {@code claim} (pod, container, tenant, memory quota). Version 1 files (no
 * claims) are still read: their allocations' claims are unknown, and the next write stores version 2. An entry
 * without a claim is written exactly as version 1 wrote it, so its checksum is computed the same way.
 */
final class LedgerCheckpoint {
    static final int VERSION = 2;
    /** Versions this agent reads. */
    static final java.util.Set<Integer> READABLE = java.util.Set.of(1, 2);
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES);

    /** The file's shape. {@code checksum} is "sha256:" + hex over the JSON of {@code allocations}. */
    record FileFormat(int version, String checksum, List<Entry> allocations) {}

    /** One allocation as stored; {@code claim} absent in version 1 and for allocations of unknown pods. */
    record Entry(String id, List<String> deviceIds, String createdAt, String owner,
                 @JsonInclude(JsonInclude.Include.NON_NULL) ClaimEntry claim) {}

    /** An allocation's {@link AllocationClaim} as stored. */
    record ClaimEntry(String podUid, String namespace, String pod, String container, String tenant,
                      long memoryBytesPerGpu) {
        static ClaimEntry of(AllocationClaim claim) {
            return claim.equals(AllocationClaim.UNKNOWN) ? null : new ClaimEntry(claim.podUid(), claim.namespace(),
                    claim.pod(), claim.container(), claim.tenant(), claim.memoryBytesPerGpu());
        }

        AllocationClaim toClaim() {
            return new AllocationClaim(podUid, namespace, pod, container, tenant, memoryBytesPerGpu);
        }
    }

    private final Path file;

    LedgerCheckpoint(Path file) {
        this.file = file;
    }

    Path file() {
        return file;
    }

    /** The stored allocations; empty when there is no checkpoint yet. */
    List<Allocation> read() throws LedgerCheckpointException {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            return List.of();
        } catch (IOException e) {
            throw new LedgerCheckpointException(file, null, "cannot be read: " + e, e);
        }
        FileFormat stored;
        try {
            stored = JSON.readValue(bytes, FileFormat.class);
        } catch (JacksonException e) {
            throw refuse("is not a ledger checkpoint (" + e.getOriginalMessage() + ")", e);
        } catch (IOException e) {
            throw refuse("cannot be parsed (" + e.getMessage() + ")", e);
        }
        if (stored == null || !READABLE.contains(stored.version())) {
            throw refuse("has version " + (stored == null ? "none" : stored.version()) + "; expected one of "
                    + new java.util.TreeSet<>(READABLE), null);
        }
        if (stored.allocations() == null) {
            throw refuse("has no allocations list", null);
        }
        String expected = checksum(stored.allocations());
        if (!expected.equals(stored.checksum())) {
            throw refuse("checksum " + stored.checksum() + " does not match its content (" + expected + ")", null);
        }
        List<Allocation> allocations = new ArrayList<>();
        for (Entry entry : stored.allocations()) {
            try {
                List<MilliGpuId> ids = entry.deviceIds().stream().map(MilliGpuId::parse).sorted().toList();
                AllocationClaim claim = entry.claim() == null ? AllocationClaim.UNKNOWN : entry.claim().toClaim();
                allocations.add(new Allocation(entry.id(), ids, Instant.parse(entry.createdAt()), entry.owner(),
                        claim));
            } catch (IllegalArgumentException | DateTimeParseException | NullPointerException e) {
                throw refuse("has a bad allocation " + entry.id() + " (" + e.getMessage() + ")", e);
            }
        }
        return allocations;
    }

    /** Replaces the checkpoint with these allocations, atomically and durably. */
    void write(List<Allocation> allocations) throws IOException {
        List<Entry> entries = allocations.stream()
                .map(a -> new Entry(a.id(), a.deviceIdStrings(), a.createdAt().toString(), a.owner(),
                        ClaimEntry.of(a.claim())))
                .toList();
        byte[] bytes = JSON.writerWithDefaultPrettyPrinter()
                .writeValueAsBytes(new FileFormat(VERSION, checksum(entries), entries));
        Path temp = file.resolveSibling(file.getFileName() + ".tmp");
        try (FileChannel channel = FileChannel.open(temp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
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

    private LedgerCheckpointException refuse(String problem, Throwable cause) {
        Path aside = file.resolveSibling(file.getFileName() + ".corrupt-" + System.currentTimeMillis());
        try {
            Files.move(file, aside, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            aside = null;
        }
        return new LedgerCheckpointException(file, aside, problem, cause);
    }

    private static String checksum(List<Entry> entries) {
        try {
            byte[] canonical = JSON.writeValueAsBytes(entries);
            return "sha256:" + HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(canonical));
        } catch (IOException | NoSuchAlgorithmException e) {
            throw new IllegalStateException("cannot compute the ledger checksum", e);
        }
    }
}
