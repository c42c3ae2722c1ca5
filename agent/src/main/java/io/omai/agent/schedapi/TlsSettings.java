package io.omai.agent.schedapi;

import io.grpc.ServerCredentials;
import io.grpc.TlsServerCredentials;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Objects;

/**
 * Mutual TLS for the scheduler API, from PEM files as a Kubernetes TLS secret holds them: the server's
 * certificate chain ({@code tls.crt}), its PKCS#8 private key ({@code tls.key}) and the CA that signs scheduler
 * client certificates ({@code ca.crt}). Every client must present a certificate from that CA.
 */
public record TlsSettings(Path certificateChain, Path privateKey, Path clientCa) {
    public TlsSettings {
        requireReadable(certificateChain, "certificate chain");
        requireReadable(privateKey, "private key");
        requireReadable(clientCa, "client CA");
    }

    private static void requireReadable(Path path, String what) {
        Objects.requireNonNull(path, what);
        if (!Files.isReadable(path)) {
            throw new IllegalArgumentException("scheduler API TLS " + what + " " + path + " is not a readable file");
        }
    }

    ServerCredentials serverCredentials() {
        try {
            return TlsServerCredentials.newBuilder()
                    .keyManager(certificateChain.toFile(), privateKey.toFile())
                    .trustManager(clientCa.toFile())
                    .clientAuth(TlsServerCredentials.ClientAuth.REQUIRE)
                    .build();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read scheduler API TLS files " + this, e);
        }
    }
}
