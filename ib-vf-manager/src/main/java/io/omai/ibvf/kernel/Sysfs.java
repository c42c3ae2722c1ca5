package io.omai.ibvf.kernel;

import io.omai.ibvf.error.SysfsMissingException;
import java.util.List;
import java.util.Optional;

/**
 * The only door to sysfs. Paths are relative to the sysfs root ({@code bus/pci/devices/0000:3b:00.0/sriov_numvfs}),
 * so the same code runs against {@code /sys} and against a fake tree. Failures surface as
 * {@link io.omai.ibvf.error.IbVfException}s built by {@link KernelErrors}.
 */
public interface Sysfs {

    /** The attribute's content with the trailing newline and surrounding blanks removed; empty when it is absent. */
    Optional<String> read(String path);

    /** Writes one value, as {@code echo value > path} would; kernel refusals become typed exceptions. */
    void write(String path, String value);

    /** Names in a directory, sorted; empty when the directory is absent. */
    List<String> list(String directory);

    boolean exists(String path);

    /** The last element of a symlink's target ({@code driver} gives {@code mlx5_core}); empty when not a link. */
    Optional<String> linkTargetName(String path);

    /** The path with every symlink resolved, relative to the root ({@code devices/pci0000:38/.../0000:3b:00.0}). */
    String canonicalPath(String path);

    /** Reads an attribute that must exist. */
    default String readRequired(String path, String why) {
        return read(path).orElseThrow(() -> new SysfsMissingException(path, why));
    }
}
