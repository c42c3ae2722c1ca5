package io.omai.harness.e2e;

import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** Runs a prepared process to completion and parses its {@code result ...} lines like {@link SimNode} does. */
public final class Programs {
    private Programs() {}

    public static SimNode.Run run(ProcessBuilder builder, Duration timeout) {
        try {
            Process process = builder.start();
            CompletableFuture<String> out = CompletableFuture.supplyAsync(() -> read(process.getInputStream()));
            CompletableFuture<String> err = CompletableFuture.supplyAsync(() -> read(process.getErrorStream()));
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly();
                process.waitFor(10, TimeUnit.SECONDS);
            }
            String stdout = out.join();
            return new SimNode.Run(process.exitValue(), SimNode.parse(stdout), stdout, err.join());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start " + builder.command(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    private static String read(java.io.InputStream in) {
        try (in) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "";
        }
    }
}
