package io.omai.harness.adversarial;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** A started container process whose output lines are kept with the moment each arrived. */
final class Container implements AutoCloseable {
    /** One line of output and when this test saw it ({@link System#nanoTime}). */
    record Line(String text, long seenNanos) {}

    private final Process process;
    private final List<Line> lines = new ArrayList<>();

    private Container(Process process) {
        this.process = process;
        Thread.ofVirtual().start(() -> {
            try (BufferedReader reader =
                    new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line = reader.readLine(); line != null; line = reader.readLine()) {
                    synchronized (lines) {
                        lines.add(new Line(line, System.nanoTime()));
                        lines.notifyAll();
                    }
                }
            } catch (IOException e) {
                // the process is gone: what arrived is all there is
            }
        });
    }

    static Container start(ProcessBuilder builder) {
        builder.redirectErrorStream(true);
        try {
            return new Container(builder.start());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start " + builder.command(), e);
        }
    }

    /** Waits for the first line containing {@code text}. */
    Line await(String text, Duration timeout) throws InterruptedException {
        return await(text, 1, timeout);
    }

    /** Waits for the {@code occurrence}-th line containing {@code text}. */
    Line await(String text, int occurrence, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (lines) {
            while (true) {
                int seen = 0;
                for (Line line : lines) {
                    if (line.text().contains(text) && ++seen == occurrence) {
                        return line;
                    }
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new AssertionError(
                            "no line with '" + text + "' within " + timeout + "; output:\n" + output());
                }
                lines.wait(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left)));
            }
        }
    }

    String output() {
        synchronized (lines) {
            StringBuilder text = new StringBuilder();
            lines.forEach(line -> text.append(line.text()).append('\n'));
            return text.toString();
        }
    }

    @Override
    public void close() {
        process.descendants().forEach(ProcessHandle::destroyForcibly);
        process.destroyForcibly();
        try {
            process.waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) { // SIGKILL was sent; only the wait for it was cut short
            Thread.currentThread().interrupt();
        }
    }
}
