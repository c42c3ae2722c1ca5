package io.omai.agent.quota;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * {@link ProcessTable} over a procfs mount ({@code /proc}, or another root in tests).
 *
 * <p>Per process it reads {@code stat} (state, field 3; start time, field 22), {@code status} (the NSpid line)
 * and the {@code ns/pid} link ({@code pid:[inode]}). A process that vanishes while being read is absent. If only
 * {@code status} or {@code ns/pid} is denied, those fields are unknown and match any slot (never taken for dead);
 * a process whose {@code stat} cannot be read throws {@link ProcessUnreadableException}, because "unreadable"
 * must never be taken for "dead".
 */
public final class LinuxProcessTable implements ProcessTable {
    private final Path proc;

    public LinuxProcessTable() {
        this(Path.of("/proc"));
    }

    public LinuxProcessTable(Path procRoot) {
        this.proc = procRoot;
    }

    @Override
    public Optional<ProcStat> read(int pid) {
        if (pid <= 0) {
            return Optional.empty();
        }
        Path dir = proc.resolve(Integer.toString(pid));
        try {
            String stat = Files.readString(dir.resolve("stat"), StandardCharsets.US_ASCII);
            // status and ns/pid may be denied (ptrace rules, another user namespace): then unknown, which
            // ProcStat.isLive treats as "could be the slot's process".
            String status = readOrNull(dir.resolve("status"));
            long ns = 0;
            try {
                ns = parseNsLink(
                        Files.readSymbolicLink(dir.resolve("ns").resolve("pid")).toString());
            } catch (java.nio.file.AccessDeniedException e) {
                ns = 0;
            }
            return Optional.of(parse(pid, stat, status, ns));
        } catch (NoSuchFileException e) {
            return Optional.empty(); // gone
        } catch (IOException | RuntimeException e) {
            if (!Files.exists(dir)) {
                return Optional.empty(); // it exited while being read
            }
            // There, but not readable (permissions, a format we do not know): it cannot be proven dead.
            throw new ProcessUnreadableException(dir, e);
        }
    }

    /** {@inheritDoc} Throws {@link ProcessUnreadableException} if any existing process cannot be read. */
    @Override
    public List<ProcStat> all() {
        List<ProcStat> out = new ArrayList<>();
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(proc)) {
            for (Path entry : entries) {
                String name = entry.getFileName().toString();
                if (!name.isEmpty() && name.chars().allMatch(Character::isDigit) && name.length() < 10) {
                    read(Integer.parseInt(name)).ifPresent(out::add);
                }
            }
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("cannot list " + proc, e);
        }
        return out;
    }

    @Override
    public long ownPidNamespaceInode() {
        try {
            return parseNsLink(
                    Files.readSymbolicLink(proc.resolve("self").resolve("ns").resolve("pid"))
                            .toString());
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }

    private static String readOrNull(Path file) throws IOException {
        try {
            return Files.readString(file, StandardCharsets.UTF_8);
        } catch (java.nio.file.AccessDeniedException e) {
            return null;
        }
    }

    /**
     * Parses one process's {@code stat} and {@code status} texts ({@code status} null if unreadable: the pid in
     * its own namespace is then unknown, -1); package-private for tests.
     */
    static ProcStat parse(int pid, String stat, String status, long pidNsInode) {
        // Field 2 (comm) is in parentheses and may itself hold spaces and ')': fields 3.. follow the LAST ')'.
        int close = stat.lastIndexOf(')');
        if (close < 0) {
            throw new IllegalArgumentException("/proc/" + pid + "/stat has no ')' after the command name: " + stat);
        }
        String[] fields = stat.substring(close + 1).trim().split(" +", -1);
        // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
        if (fields.length < 20) {
            throw new IllegalArgumentException(
                    "/proc/" + pid + "/stat has " + (fields.length + 2) + " fields, expected at least 22");
        }
        boolean zombie = fields[0].equals("Z") || fields[0].equals("X");
        long start = Long.parseUnsignedLong(fields[19]);
        int nsPid = status == null ? -1 : pid;
        for (String line : status == null ? new String[0] : status.split("\n")) {
            if (line.startsWith("NSpid:")) {
                String[] pids = line.substring("NSpid:".length()).trim().split("\\s+", -1);
                nsPid = Integer.parseInt(pids[pids.length - 1]);
                break;
            }
        }
        return new ProcStat(pid, nsPid, pidNsInode, start, zombie);
    }

    /** {@code pid:[4026531836]} → 4026531836. */
    static long parseNsLink(String link) {
        int open = link.indexOf('[');
        int close = link.indexOf(']', open + 1);
        if (!link.startsWith("pid:") || open < 0 || close < 0) {
            throw new IllegalArgumentException("pid namespace link '" + link + "' is not pid:[inode]");
        }
        return Long.parseUnsignedLong(link.substring(open + 1, close));
    }
}
