package io.omai.agent.quota.shm;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

/**
 * The directory of one allocation: {@value #CONTROL} (agent → shim, mounted read-only) and {@value #USAGE}
 * (shim → agent, mounted read-write). Opening or creating both together keeps them consistent: a usage file
 * always has the control file's device count.
 *
 * <p>The directory is mode 0700, owned by the agent (root): no other host user can reach either file. A container
 * reaches its two files through their own bind mounts, which do not pass through the directory, so the usage
 * file keeps mode 0666 for a container process of any uid; the directory is what keeps host users out.
 */
public final class AllocationFiles implements AutoCloseable {
    public static final String CONTROL = "control";
    public static final String USAGE = "usage";

    private final Path directory;
    private final ControlRegion control;
    private final UsageRegion usage;
    private final ControlWriterLock writerLock; // null unless opened with openAsWriter

    private AllocationFiles(Path directory, ControlRegion control, UsageRegion usage, ControlWriterLock writerLock) {
        this.directory = directory;
        this.control = control;
        this.usage = usage;
        this.writerLock = writerLock;
    }

    /** Mode of an allocation directory: the agent only. */
    public static final String DIRECTORY_PERMISSIONS = "rwx------";

    /** Creates the directory (0700) and both files. Existing files are replaced. */
    public static AllocationFiles create(Path directory, AllocationSpec spec) throws IOException {
        Files.createDirectories(directory);
        Files.setPosixFilePermissions(directory, PosixFilePermissions.fromString(DIRECTORY_PERMISSIONS));
        ControlRegion control = ControlRegion.create(directory.resolve(CONTROL), spec);
        try {
            UsageRegion usage =
                    UsageRegion.create(directory.resolve(USAGE), spec.devices().size());
            return new AllocationFiles(directory, control, usage, null);
        } catch (IOException | RuntimeException e) {
            control.close();
            throw e;
        }
    }

    /**
     * Opens both files of an existing allocation for writing without the writer lock (for the creator of a
     * directory no one else sees yet; a writer of a live allocation uses {@link #openAsWriter}): the control file
     * validated, the usage file (the container's to write) mapped as claims ({@link UsageRegion#openClaims}) and
     * checked on every pass instead.
     */
    public static AllocationFiles open(Path directory) throws IOException {
        return open(directory, true);
    }

    /**
     * Opens both files as the one writer of the control file: takes the allocation's {@link ControlWriterLock}
     * (held until {@link #close}), then repairs an update a dead writer left half done.
     *
     * @throws ControlWriterLock.HeldException when another writer holds the lock
     */
    public static AllocationFiles openAsWriter(Path directory) throws IOException {
        ControlWriterLock lock = ControlWriterLock.acquire(directory);
        try {
            // a directory an older agent made 0755 is tightened by its next writer
            Files.setPosixFilePermissions(directory, PosixFilePermissions.fromString(DIRECTORY_PERMISSIONS));
            return open(directory, true, lock);
        } catch (IOException | RuntimeException e) {
            lock.close();
            throw e;
        }
    }

    /** Opens both files read-only (inspect). */
    public static AllocationFiles openReadOnly(Path directory) throws IOException {
        return open(directory, false);
    }

    private static AllocationFiles open(Path directory, boolean writable) throws IOException {
        return open(directory, writable, null);
    }

    private static AllocationFiles open(Path directory, boolean writable, ControlWriterLock writerLock)
            throws IOException {
        ControlRegion control = writable
                ? ControlRegion.open(directory.resolve(CONTROL))
                : ControlRegion.openReadOnly(directory.resolve(CONTROL));
        try {
            if (writerLock != null) {
                control.repairTornUpdate(); // before the first read, which would wait for the odd epoch
            }
            int controlDevices = control.read().devices().size();
            if (writable && controlDevices > 0) {
                // the agent: the usage file is the container's, its contents claims checked on every pass
                return new AllocationFiles(
                        directory,
                        control,
                        UsageRegion.openClaims(directory.resolve(USAGE), controlDevices),
                        writerLock);
            }
            UsageRegion usage = writable
                    ? UsageRegion.open(directory.resolve(USAGE))
                    : UsageRegion.openReadOnly(directory.resolve(USAGE));
            if (usage.deviceCount() != controlDevices) {
                usage.close();
                throw new RegionFormatException(
                        usage.path(),
                        RegionFormatException.Problem.BAD_FIELD,
                        "device_count is " + usage.deviceCount() + ", expected " + controlDevices + " as in "
                                + control.path());
            }
            return new AllocationFiles(directory, control, usage, writerLock);
        } catch (IOException | RuntimeException e) {
            control.close();
            throw e;
        }
    }

    /** Removes an allocation's files and its directory; absent files are fine. */
    public static void delete(Path directory) throws IOException {
        if (!Files.isDirectory(directory)) {
            return;
        }
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(directory)) {
            for (Path entry : entries) {
                Files.deleteIfExists(entry);
            }
        }
        Files.deleteIfExists(directory);
    }

    public Path directory() {
        return directory;
    }

    public ControlRegion control() {
        return control;
    }

    public UsageRegion usage() {
        return usage;
    }

    @Override
    public void close() {
        try {
            usage.close();
        } finally {
            control.close();
            if (writerLock != null) {
                writerLock.close();
            }
        }
    }
}
