package io.omai.extender.config;

import java.nio.file.Path;
import java.util.Objects;
import java.util.Optional;

/**
 * TLS to the node agents' scheduler API: the CA that signed the agents' certificates and, for mutual TLS, the
 * extender's own certificate and key (PEM files).
 */
public record AgentTls(Path caFile, Optional<Path> certFile, Optional<Path> keyFile) {
    public AgentTls {
        Objects.requireNonNull(caFile, "caFile");
        Objects.requireNonNull(certFile, "certFile");
        Objects.requireNonNull(keyFile, "keyFile");
        if (certFile.isPresent() != keyFile.isPresent()) {
            throw new IllegalArgumentException(
                    "agent TLS: certFile and keyFile go together (mutual TLS) or are both absent; got certFile="
                            + certFile.map(Path::toString).orElse("none") + ", keyFile="
                            + keyFile.map(Path::toString).orElse("none"));
        }
    }
}
