package io.omai.agent.logging;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.util.LogbackMDCAdapter;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The agent's own logging set-up ({@link AgentLogConfigurator}), fed hostile values: every event must come out as exactly one line, with the
 * values visible (escaped), whatever they contain and however they reached the message.
 */
class OneLineLogTest {
    private static final String FORGED = "GPU-1-m1\n2026-01-01T00:00:00.000Z INFO  Forged [main] event=forged";

    private final ByteArrayOutputStream err = new ByteArrayOutputStream();
    private PrintStream originalErr;
    private LoggerContext context;
    private Logger log;

    @BeforeEach
    void configureTheAgentsLogback() {
        originalErr = System.err;
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        context = new LoggerContext();
        context.setMDCAdapter(new LogbackMDCAdapter()); // a context of our own, as the agent's JVM would have
        AgentLogConfigurator configurator = new AgentLogConfigurator();
        configurator.setContext(context);
        assertThat(configurator.configure(context))
                .as("no logback.configurationFile or logback-test.xml here: the agent's own set-up applies")
                .isEqualTo(ch.qos.logback.classic.spi.Configurator.ExecutionStatus.DO_NOT_INVOKE_NEXT_IF_ANY);
        log = context.getLogger("io.omai.agent.deviceplugin.DevicePluginService");
    }

    @AfterEach
    void restore() {
        context.stop();
        System.setErr(originalErr);
    }

    private List<String> lines() {
        return err.toString(StandardCharsets.UTF_8).lines().toList();
    }

    @Test
    void aNewlineInAnArgumentStaysOnTheEventsLine() {
        log.warn("event=allocate_refused device={} reason=\"{}\"", FORGED, "unknown");
        assertThat(lines()).hasSize(1);
        assertThat(lines().getFirst())
                .contains(
                        " WARN ",
                        "event=allocate_refused",
                        "device=GPU-1-m1\\n2026-01-01T00:00:00.000Z INFO  Forged [main] event=forged reason=\"unknown\"");
    }

    @Test
    void aQuoteInAQuotedValueCannotCloseItEarly() {
        log.warn("event=allocate_refused reason=\"{}\"", "x\" forged=\"yes\\");
        assertThat(lines()).containsExactly(lines().getFirst());
        assertThat(lines().getFirst()).endsWith("event=allocate_refused reason=\"x\\\" forged=\\\"yes\\\\\"");
    }

    @Test
    void textConcatenatedIntoTheMessageIsEscapedToo() {
        log.info("event=allocate_refused reason=\"" + FORGED + "\r\u0000\u001b[31m\u2028\"");
        assertThat(lines()).hasSize(1);
        assertThat(lines().getFirst()).contains("GPU-1-m1\\n2026-01-01", "\\r\\u0000\\u001b[31m\\u2028\"");
    }

    @Test
    void anExceptionStaysOnTheEventsLineWithItsCause() {
        Exception cause = new IllegalArgumentException("device ID '" + FORGED + "' is unknown");
        log.error(
                "event=registration_loop_error resource={}",
                "omai.io/milli-gpu",
                new IllegalStateException("failed\nforged line", cause));
        assertThat(lines()).hasSize(1);
        assertThat(lines().getFirst())
                .contains(
                        "event=registration_loop_error resource=omai.io/milli-gpu",
                        " exception=\"java.lang.IllegalStateException: failed\\nforged line\"",
                        " at=io.omai.agent.logging.OneLineLogTest.anExceptionStaysOnTheEventsLineWithItsCause(",
                        " cause=\"java.lang.IllegalArgumentException: device ID 'GPU-1-m1\\n2026-01-01T00");
    }

    @Test
    void ordinaryValuesAreLeftAsTheyAre() {
        log.info(
                "event=registered resource={} endpoint={} took_ms={} ids={}",
                "omai.io/milli-gpu",
                "omai-io-milli-gpu.sock",
                12,
                new String[] {"a", "b"});
        assertThat(lines())
                .singleElement()
                .asString()
                .endsWith("event=registered resource=omai.io/milli-gpu "
                        + "endpoint=omai-io-milli-gpu.sock took_ms=12 ids=[a, b]");
    }
}
