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
 */
public final class AllocationFiles implements AutoCloseable {
    public static final String CONTROL = "control";
    public static final String USAGE = "usage";

    private final Path directory;
    private final ControlRegion control;
    private final UsageRegion usage;

    private AllocationFiles(Path directory, ControlRegion control, UsageRegion usage) {
        this.directory = directory;
        this.control = control;
        this.usage = usage;
    }

    /** Creates the directory (0755) and both files. Existing files are replaced. */
    public static AllocationFiles create(Path directory, AllocationSpec spec) throws IOException {
        Files.createDirectories(directory);
        Files.setPosixFilePermissions(directory, PosixFilePermissions.fromString("rwxr-xr-x"));
        ControlRegion control = ControlRegion.create(directory.resolve(CONTROL), spec);
        try {
            UsageRegion usage = UsageRegion.create(directory.resolve(USAGE), spec.devices().size());
            return new AllocationFiles(directory, control, usage);
        } catch (IOException | RuntimeException e) {
            control.close();
            throw e;
        }
    }

    /**
     * Opens both files of an existing allocation for the agent: the control file validated, the usage file (the
     * container's to write) mapped as claims ({@link UsageRegion#openClaims}) and checked on every pass instead.
     */
    public static AllocationFiles open(Path directory) throws IOException {
        return open(directory, true);
    }

    /** Opens both files read-only (inspect). */
    public static AllocationFiles openReadOnly(Path directory) throws IOException {
        return open(directory, false);
    }

    private static AllocationFiles open(Path directory, boolean writable) throws IOException {
        ControlRegion control = writable
                ? ControlRegion.open(directory.resolve(CONTROL))
                : ControlRegion.openReadOnly(directory.resolve(CONTROL));
        try {
            int controlDevices = control.read().devices().size();
            if (writable && controlDevices > 0) {
                // the agent: the usage file is the container's, its contents claims checked on every pass
                return new AllocationFiles(directory, control,
                        UsageRegion.openClaims(directory.resolve(USAGE), controlDevices));
            }
            UsageRegion usage = writable
                    ? UsageRegion.open(directory.resolve(USAGE))
                    : UsageRegion.openReadOnly(directory.resolve(USAGE));
            if (usage.deviceCount() != controlDevices) {
                usage.close();
                throw new RegionFormatException(usage.path(), RegionFormatException.Problem.BAD_FIELD,
                        "device_count is " + usage.deviceCount() + ", expected " + controlDevices
                                + " as in " + control.path());
            }
            return new AllocationFiles(directory, control, usage);
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
        }
    }
}
