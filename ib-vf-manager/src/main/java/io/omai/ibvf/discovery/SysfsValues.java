package io.omai.ibvf.discovery;

import io.omai.ibvf.error.SysfsFormatException;
import io.omai.ibvf.kernel.Sysfs;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.LinkLayer;
import io.omai.ibvf.model.PortState;
import java.util.HexFormat;
import java.util.Locale;
import java.util.Optional;
import java.util.OptionalInt;

/** Typed reads of sysfs attributes; every malformed value becomes a {@link SysfsFormatException} naming path and value. */
public final class SysfsValues {

    private final Sysfs sysfs;

    public SysfsValues(Sysfs sysfs) {
        this.sysfs = sysfs;
    }

    public int decimal(String path, String why) {
        return parseDecimal(path, sysfs.readRequired(path, why));
    }

    public OptionalInt optionalDecimal(String path) {
        return sysfs.read(path)
                .map(text -> OptionalInt.of(parseDecimal(path, text)))
                .orElse(OptionalInt.empty());
    }

    /** {@code numa_node}: {@code -1} means unknown and must not be read as node 0. */
    public OptionalInt numaNode(String path) {
        Optional<String> text = sysfs.read(path);
        if (text.isEmpty()) {
            return OptionalInt.empty();
        }
        int node = parseSigned(path, text.get());
        if (node < -1) {
            throw new SysfsFormatException(path, text.get(), "a NUMA node number >= 0, or -1 for unknown");
        }
        return node == -1 ? OptionalInt.empty() : OptionalInt.of(node);
    }

    /** A {@code 0x}-prefixed hex attribute such as {@code class} or {@code vendor}. */
    public int prefixedHex(String path, String why) {
        String text = sysfs.readRequired(path, why);
        if (!text.startsWith("0x")
                || text.length() < 3
                || text.length() > 10
                || !text.substring(2).chars().allMatch(HexFormat::isHexDigit)) {
            throw new SysfsFormatException(path, text, "a hexadecimal number with a 0x prefix, e.g. 0x020700");
        }
        return (int) Long.parseLong(text.substring(2), 16);
    }

    /** {@code sriov_vf_device}: 4 hex digits without prefix, e.g. {@code 101c}. */
    public String bareHexDeviceId(String path, String why) {
        String text = sysfs.readRequired(path, why);
        if (text.length() != 4 || !text.chars().allMatch(HexFormat::isHexDigit)) {
            throw new SysfsFormatException(path, text, "a 4-digit hexadecimal PCI device id without 0x, e.g. 101c");
        }
        return text.toLowerCase(Locale.ROOT);
    }

    public LinkLayer linkLayer(String path) {
        String text = sysfs.readRequired(path, "every RDMA port reports its link layer");
        return LinkLayer.fromSysfs(text)
                .orElseThrow(() -> new SysfsFormatException(path, text, "'InfiniBand' or 'Ethernet'"));
    }

    public PortState portState(String path) {
        String text = sysfs.readRequired(path, "every RDMA port reports its state");
        return PortState.fromSysfs(text)
                .orElseThrow(() -> new SysfsFormatException(path, text, "'<n>: <STATE>' such as '4: ACTIVE'"));
    }

    public Optional<PortState> optionalPortState(String path) {
        return sysfs.exists(path) ? Optional.of(portState(path)) : Optional.empty();
    }

    public Optional<Guid> optionalGuid(String path) {
        return sysfs.read(path)
                .map(text -> Guid.parse(text)
                        .orElseThrow(() -> new SysfsFormatException(path, text, "a GUID such as b83f:d203:00a1:b2c4")));
    }

    /** The port GUID from {@code gids/0}: the low 64 bits of the IPv6-style GID. */
    public Optional<Guid> optionalPortGuidFromGid(String path) {
        return sysfs.read(path).map(text -> {
            String[] groups = text.split(":", -1);
            if (groups.length != 8) {
                throw new SysfsFormatException(
                        path, text, "a GID of 8 groups such as fe80:0000:0000:0000:b83f:d203:00a1:b2c4");
            }
            String low = String.join(":", groups[4], groups[5], groups[6], groups[7]);
            return Guid.parse(low)
                    .orElseThrow(() -> new SysfsFormatException(path, text, "a GID of 8 four-digit hex groups"));
        });
    }

    private static int parseDecimal(String path, String text) {
        int value = parseSigned(path, text);
        if (value < 0) {
            throw new SysfsFormatException(path, text, "a non-negative decimal number");
        }
        return value;
    }

    private static int parseSigned(String path, String text) {
        try {
            return Integer.parseInt(text);
        } catch (NumberFormatException notANumber) {
            throw new SysfsFormatException(path, text, "a decimal number");
        }
    }
}
