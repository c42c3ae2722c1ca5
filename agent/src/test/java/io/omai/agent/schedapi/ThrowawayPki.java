package io.omai.agent.schedapi;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A throw-away CA and certificates for TLS tests, made with the JDK's keytool (no extra dependency). Private
 * keys are written as PKCS#8 PEM, certificates as PEM, as a Kubernetes TLS secret holds them.
 */
final class ThrowawayPki {
    private static final String PASSWORD = "test-only";

    private final Path directory;

    /** Where one party's PEM files are. */
    record Party(Path certificateChain, Path privateKey) {}

    ThrowawayPki(Path directory) throws IOException, InterruptedException {
        this.directory = directory;
        keytool("-genkeypair", "-keystore", store("ca"), "-alias", "ca", "-dname", "CN=omai-test-ca", "-ext", "bc:c");
        keytool("-exportcert", "-rfc", "-keystore", store("ca"), "-alias", "ca", "-file", ca().toString());
    }

    Path ca() {
        return directory.resolve("ca.crt");
    }

    /**
     * A key pair and a certificate signed by the CA.
     *
     * @param subjectAlternativeNames keytool's san form, e.g. {@code dns:localhost,ip:127.0.0.1}
     */
    Party issue(String name, String commonName, String subjectAlternativeNames)
            throws IOException, InterruptedException {
        keytool("-genkeypair", "-keystore", store(name), "-alias", name, "-dname", "CN=" + commonName);
        Path request = directory.resolve(name + ".csr");
        keytool("-certreq", "-keystore", store(name), "-alias", name, "-file", request.toString());
        Path certificate = directory.resolve(name + ".crt");
        var gencert = new ArrayList<>(List.of(
                "-gencert",
                "-rfc",
                "-keystore",
                store("ca"),
                "-alias",
                "ca",
                "-infile",
                request.toString(),
                "-outfile",
                certificate.toString()));
        if (!subjectAlternativeNames.isEmpty()) {
            gencert.addAll(List.of("-ext", "san=" + subjectAlternativeNames));
        }
        keytool(gencert.toArray(String[]::new));
        Path key = directory.resolve(name + ".key");
        Files.writeString(key, pem("PRIVATE KEY", privateKey(name).getEncoded()));
        return new Party(certificate, key);
    }

    private PrivateKey privateKey(String name) throws IOException {
        try (InputStream in = Files.newInputStream(Path.of(store(name)))) {
            KeyStore store = KeyStore.getInstance("PKCS12");
            store.load(in, PASSWORD.toCharArray());
            return (PrivateKey) store.getKey(name, PASSWORD.toCharArray());
        } catch (java.security.GeneralSecurityException e) {
            throw new IOException("cannot read the key keytool wrote for " + name, e);
        }
    }

    private static String pem(String type, byte[] der) {
        String body = Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII))
                .encodeToString(der);
        return "-----BEGIN " + type + "-----\n" + body + "\n-----END " + type + "-----\n";
    }

    private String store(String name) {
        return directory.resolve(name + ".p12").toString();
    }

    private void keytool(String... arguments) throws IOException, InterruptedException {
        var command = new ArrayList<String>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "keytool").toString());
        // each call is a short-lived JVM: skip the optimising compiler and the parallel GC's start-up
        command.addAll(List.of("-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC"));
        command.addAll(List.of(arguments));
        command.addAll(List.of("-storetype", "PKCS12", "-storepass", PASSWORD, "-noprompt"));
        if (arguments[0].equals("-genkeypair")) {
            command.addAll(List.of("-keypass", PASSWORD, "-keyalg", "EC", "-groupname", "secp256r1", "-validity", "2"));
        }
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!process.waitFor(60, TimeUnit.SECONDS) || process.exitValue() != 0) {
            throw new IOException("keytool " + String.join(" ", arguments) + " failed: " + output);
        }
    }
}
