package io.omai.agent.quota.shm;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.function.Consumer;

/**
 * One memory-mapped region file and the arena that owns its mapping. The only class here that opens, maps and
 * unmaps; regions built on it translate FFM failures into {@link RegionFormatException} or
 * {@link IllegalStateException} ("closed").
 */
final class MappedFile implements AutoCloseable {
    private final Path path;
    private final Arena arena;
    private final MemorySegment segment;
    private final boolean writable;

    private MappedFile(Path path, Arena arena, MemorySegment segment, boolean writable) {
        this.path = path;
        this.arena = arena;
        this.segment = segment;
        this.writable = writable;
    }

    /**
     * Maps an existing file. A file shorter than {@code minimumSize} is refused before mapping, so a truncated
     * file never turns into a SIGBUS later.
     */
    // The arena is handed to the returned MappedFile, which closes it; on failure it is closed here.
    @SuppressWarnings("MustBeClosedChecker")
    static MappedFile open(Path path, boolean writable, long minimumSize, String kind) throws IOException {
        if (!Files.isRegularFile(path)) {
            throw new java.nio.file.NoSuchFileException(path.toString(), null, kind + " file does not exist");
        }
        Arena arena = Arena.ofShared();
        boolean success = false;
        try (FileChannel channel = writable
                ? FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE)
                : FileChannel.open(path, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size < minimumSize) {
                throw new RegionFormatException(
                        path,
                        RegionFormatException.Problem.TRUNCATED,
                        kind + " file is " + size + " bytes, expected at least " + minimumSize);
            }
            MemorySegment segment = channel.map(
                    writable ? FileChannel.MapMode.READ_WRITE : FileChannel.MapMode.READ_ONLY, 0, size, arena);
            success = true;
            return new MappedFile(path, arena, segment, writable);
        } finally {
            if (!success) {
                arena.close();
            }
        }
    }

    /**
     * Maps {@code size} bytes of an existing file read-write whatever its size now: a shorter file (one a
     * container truncated) is extended with zeros, so the mapping never faults. Nothing is validated: the caller
     * treats the contents as claims.
     */
    // The arena is handed to the returned MappedFile, which closes it; on failure it is closed here.
    @SuppressWarnings("MustBeClosedChecker")
    static MappedFile openSized(Path path, long size, String kind) throws IOException {
        if (!Files.isRegularFile(path, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            throw new java.nio.file.NoSuchFileException(path.toString(), null, kind + " file does not exist");
        }
        Arena arena = Arena.ofShared();
        boolean success = false;
        try (FileChannel channel = FileChannel.open(
                path, StandardOpenOption.READ, StandardOpenOption.WRITE, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            MemorySegment segment = channel.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
            success = true;
            return new MappedFile(path, arena, segment, true);
        } finally {
            if (!success) {
                arena.close();
            }
        }
    }

    /** A region's own checks of a freshly mapped file. */
    @FunctionalInterface
    interface Validator {
        void validate(MappedFile file) throws RegionFormatException;
    }

    /** {@link #open} and then the region's checks; the mapping is released when a check fails. */
    static MappedFile openChecked(Path path, boolean writable, long minimumSize, String kind, Validator validator)
            throws IOException {
        MappedFile file = open(path, writable, minimumSize, kind);
        boolean success = false;
        try {
            validator.validate(file);
            success = true;
            return file;
        } finally {
            if (!success) {
                file.close();
            }
        }
    }

    /**
     * Checks what every region file starts with: its magic (u64 at 0) and the ABI version (u32 at 8) — the same
     * offsets in both headers, as the header probe test pins.
     *
     * @param magicText the magic as text, for the message ("OMAICTL1")
     */
    void requireIdentity(long expectedMagic, String magicText, String kind) throws RegionFormatException {
        long magic = (long) ShmLayout.LONG.getAcquire(segment, 0L);
        if (magic != expectedMagic) {
            throw new RegionFormatException(
                    path,
                    RegionFormatException.Problem.BAD_MAGIC,
                    String.format(
                            "magic is 0x%016x, expected 0x%016x (\"%s\"): not an OMAI %s file",
                            magic, expectedMagic, magicText, kind));
        }
        int version = (int) ShmLayout.INT.get(segment, 8L);
        if (version != ShmLayout.ABI_VERSION) {
            throw new RegionFormatException(
                    path,
                    RegionFormatException.Problem.UNSUPPORTED_VERSION,
                    "ABI version is " + Integer.toUnsignedString(version) + ", this agent speaks version "
                            + ShmLayout.ABI_VERSION);
        }
    }

    /** A header field that must hold exactly {@code expected}. */
    void requireField(String field, long offset, long expected) throws RegionFormatException {
        int actual = (int) ShmLayout.INT.get(segment, offset);
        if (actual != expected) {
            throw new RegionFormatException(
                    path,
                    RegionFormatException.Problem.BAD_FIELD,
                    field + " is " + Integer.toUnsignedString(actual) + ", expected " + expected);
        }
    }

    /**
     * Creates a zero-filled file of {@code size} bytes, lets {@code initializer} fill it while nobody else can
     * see it, then renames it into place atomically: a reader sees either no file or a complete one.
     */
    // The arena is handed to the returned MappedFile, which closes it; on failure it is closed here.
    @SuppressWarnings("MustBeClosedChecker")
    static MappedFile create(Path path, long size, String permissions, Consumer<MemorySegment> initializer)
            throws IOException {
        Path dir = path.toAbsolutePath().getParent();
        Path tmp = Files.createTempFile(dir, "." + path.getFileName() + ".", ".tmp");
        Arena arena = Arena.ofShared();
        boolean success = false;
        try {
            MemorySegment segment;
            try (FileChannel channel = FileChannel.open(tmp, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                channel.truncate(0);
                channel.write(java.nio.ByteBuffer.allocate(1), size - 1);
                segment = channel.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
                initializer.accept(segment);
                segment.force();
            }
            Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString(permissions));
            try {
                Files.move(tmp, path, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                throw new IOException("cannot create " + path + " atomically: " + e.getMessage(), e);
            }
            success = true;
            return new MappedFile(path, arena, segment, true);
        } finally {
            if (!success) {
                arena.close();
                Files.deleteIfExists(tmp);
            }
        }
    }

    Path path() {
        return path;
    }

    MemorySegment segment() {
        return segment;
    }

    boolean writable() {
        return writable;
    }

    /** Throws a clear error when a read-only mapping is asked to write. */
    void requireWritable(String operation) {
        if (!writable) {
            throw new IllegalStateException(operation + " on " + path + ", which was opened read-only");
        }
    }

    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }
}
