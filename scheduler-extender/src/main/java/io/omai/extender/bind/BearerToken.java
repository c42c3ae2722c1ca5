package io.omai.extender.bind;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.Optional;

/**
 * The projected service-account token sent to agents as {@code authorization: Bearer}. kubelet rotates it by
 * swapping the file, so it is re-read whenever its modification time changes, never cached for good.
 */
public final class BearerToken {
    private final Optional<Path> file;

    @GuardedBy("this")
    private FileTime readAt = FileTime.fromMillis(Long.MIN_VALUE);

    @GuardedBy("this")
    private String token = "";

    public BearerToken(Optional<Path> file) {
        this.file = file;
    }

    /** The current token; empty when no file is configured. */
    public synchronized Optional<String> current() {
        if (file.isEmpty()) {
            return Optional.empty();
        }
        try {
            FileTime modified = Files.getLastModifiedTime(file.get());
            if (!modified.equals(readAt)) {
                String read =
                        Files.readString(file.get(), StandardCharsets.UTF_8).strip();
                if (read.isEmpty()) {
                    throw new IllegalStateException("token file " + file.get() + " is empty; expected a JWT");
                }
                token = read;
                readAt = modified;
            }
            return Optional.of(token);
        } catch (IOException e) {
            throw new UncheckedIOException("token file " + file.get() + " cannot be read: " + e.getMessage(), e);
        }
    }
}
