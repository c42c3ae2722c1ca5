package io.omai.ibvf.guid;

import io.omai.ibvf.error.GuidAssignmentException;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.PciAddress;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@link GuidStore} in one small text file on the host (a hostPath volume, so it outlives the agent's pod):
 * <pre>
 * # omai ib-vf-manager VF GUID assignments
 * format 1
 * node worker-07
 * 0000:3b:00.0 0 02:00:00:07:00:00:12:34
 * </pre>
 * The node line guards against a file copied from another node, which would duplicate GUIDs on the subnet.
 */
public final class FileGuidStore implements GuidStore {

    private static final String HEADER = "# omai ib-vf-manager VF GUID assignments";
    private static final String FORMAT_LINE = "format 1";

    private final Path file;

    public FileGuidStore(Path file) {
        this.file = file;
    }

    public Path file() {
        return file;
    }

    @Override
    public Map<GuidKey, Guid> load(String nodeName) {
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException absent) {
            return Map.of();
        } catch (IOException failure) {
            throw new GuidAssignmentException("cannot read GUID assignments from " + file + ": " + failure, failure);
        }
        Map<GuidKey, Guid> assignments = new TreeMap<>();
        boolean sawFormat = false;
        boolean sawNode = false;
        for (int number = 1; number <= lines.size(); number++) {
            String line = lines.get(number - 1).strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            String[] fields = line.split("\\s+");
            if (!sawFormat) {
                if (!line.equals(FORMAT_LINE)) {
                    throw corrupt(number, line, "'" + FORMAT_LINE + "' as the first line");
                }
                sawFormat = true;
            } else if (!sawNode) {
                if (fields.length != 2 || !fields[0].equals("node")) {
                    throw corrupt(number, line, "'node <name>'");
                }
                if (!fields[1].equals(nodeName)) {
                    throw new GuidAssignmentException(
                            "GUID assignments in " + file + " belong to node '" + fields[1] + "', not to this node '"
                                    + nodeName + "'; a copied file would duplicate GUIDs on the subnet");
                }
                sawNode = true;
            } else {
                parseAssignment(number, line, fields, assignments);
            }
        }
        return assignments;
    }

    private void parseAssignment(int number, String line, String[] fields, Map<GuidKey, Guid> assignments) {
        String expected = "'<pf-pci-address> <vf-index> <guid>' such as '0000:3b:00.0 0 02:00:00:07:00:00:00:01'";
        if (fields.length != 3 || !PciAddress.isPciAddress(fields[0])) {
            throw corrupt(number, line, expected);
        }
        int vfIndex;
        try {
            vfIndex = Integer.parseInt(fields[1]);
        } catch (NumberFormatException notANumber) {
            throw corrupt(number, line, expected);
        }
        Guid guid = Guid.parse(fields[2])
                .filter(Guid::isAssignable)
                .orElseThrow(
                        () -> corrupt(number, line, expected + " with a GUID that is neither all-zero nor all-ones"));
        if (vfIndex < 0 || assignments.put(new GuidKey(PciAddress.of(fields[0]), vfIndex), guid) != null) {
            throw corrupt(number, line, "one line per PF and non-negative VF index");
        }
    }

    @Override
    public void save(String nodeName, Map<GuidKey, Guid> assignments) {
        StringBuilder text = new StringBuilder(HEADER)
                .append('\n')
                .append(FORMAT_LINE)
                .append('\n')
                .append("node ")
                .append(nodeName)
                .append('\n');
        new TreeMap<>(assignments)
                .forEach((key, guid) -> text.append(key.pf())
                        .append(' ')
                        .append(key.vfIndex())
                        .append(' ')
                        .append(guid.toIpLinkFormat())
                        .append('\n'));
        Path temporary = file.resolveSibling(file.getFileName() + ".tmp");
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            Files.writeString(temporary, text, StandardCharsets.UTF_8);
            Files.move(temporary, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException failure) {
            throw new GuidAssignmentException("cannot save GUID assignments to " + file + ": " + failure, failure);
        }
    }

    private GuidAssignmentException corrupt(int lineNumber, String line, String expected) {
        return new GuidAssignmentException(
                "GUID assignment file " + file + " line " + lineNumber + " reads '" + line + "', expected " + expected);
    }
}
