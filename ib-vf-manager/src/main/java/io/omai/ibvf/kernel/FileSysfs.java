package io.omai.ibvf.kernel;

import io.omai.ibvf.error.SysfsMissingException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

/** {@link Sysfs} over real files under a root: {@code /sys} in production, a temporary tree in tests. */
public final class FileSysfs implements Sysfs {

    public static final Path DEFAULT_ROOT = Path.of("/sys");

    private final Path root;

    public FileSysfs(Path root) {
        this.root = root.toAbsolutePath().normalize();
    }

    public static FileSysfs system() {
        return new FileSysfs(DEFAULT_ROOT);
    }

    public Path root() {
        return root;
    }

    @Override
    public Optional<String> read(String path) {
        Path file = resolve(path);
        try {
            return Optional.of(Files.readString(file, StandardCharsets.UTF_8).strip());
        } catch (NoSuchFileException absent) {
            return Optional.empty();
        } catch (IOException failure) {
            if (Files.isDirectory(file)) {
                return Optional.empty();
            }
            throw KernelErrors.readFailed(path, failure);
        }
    }

    @Override
    public void write(String path, String value) {
        // sysfs stores take the whole buffer in one write(2); TRUNCATE keeps regular files in fake trees exact.
        try {
            Files.writeString(
                    resolve(path),
                    value,
                    StandardCharsets.UTF_8,
                    StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING);
        } catch (IOException failure) {
            throw KernelErrors.writeFailed(path, value, failure);
        }
    }

    @Override
    public List<String> list(String directory) {
        Path dir = resolve(directory);
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        try (Stream<Path> entries = Files.list(dir)) {
            return entries.map(entry -> entry.getFileName().toString()).sorted().toList();
        } catch (NoSuchFileException vanished) {
            return List.of();
        } catch (IOException failure) {
            throw KernelErrors.readFailed(directory, failure);
        }
    }

    @Override
    public boolean exists(String path) {
        return Files.exists(resolve(path));
    }

    @Override
    public Optional<String> linkTargetName(String path) {
        Path link = resolve(path);
        if (!Files.isSymbolicLink(link)) {
            return Optional.empty();
        }
        try {
            return Optional.of(Files.readSymbolicLink(link).getFileName().toString());
        } catch (IOException failure) {
            throw KernelErrors.readFailed(path, failure);
        }
    }

    @Override
    public String canonicalPath(String path) {
        try {
            Path real = resolve(path).toRealPath();
            Path realRoot = root.toRealPath();
            if (!real.startsWith(realRoot)) {
                throw new SysfsMissingException(path, "it resolves to " + real + ", outside the sysfs root " + root);
            }
            return realRoot.relativize(real).toString();
        } catch (NoSuchFileException absent) {
            throw new SysfsMissingException(path, "cannot resolve its real location");
        } catch (IOException failure) {
            throw KernelErrors.readFailed(path, failure);
        }
    }

    private Path resolve(String path) {
        Path resolved = root.resolve(path).normalize();
        if (!resolved.startsWith(root)) {
            throw new IllegalArgumentException("sysfs path " + path + " escapes the root " + root);
        }
        return resolved;
    }
}
