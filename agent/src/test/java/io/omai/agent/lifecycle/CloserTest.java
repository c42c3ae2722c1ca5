package io.omai.agent.lifecycle;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

class CloserTest {
    private final ListAppender<ILoggingEvent> logged = new ListAppender<>();
    private final Logger closerLog = (Logger) LoggerFactory.getLogger(Closer.class);
    private final List<String> closed = new ArrayList<>();

    @BeforeEach
    void captureLog() {
        logged.start();
        closerLog.addAppender(logged);
    }

    @AfterEach
    void releaseLog() {
        closerLog.detachAppender(logged);
    }

    @Test
    void closesNewestFirst() {
        Closer closer = new Closer("test");
        closer.add("nvml", () -> closed.add("nvml"));
        closer.add("ledger", () -> closed.add("ledger"));
        closer.add("server", () -> closed.add("server"));

        assertThat(closer.closeAll()).isEmpty();
        assertThat(closed).containsExactly("server", "ledger", "nvml");
    }

    @Test
    void aFailingCloseIsLoggedWithItsStackTraceAndTheRestStillClose() {
        Closer closer = new Closer("node-agent");
        closer.add("nvml", () -> closed.add("nvml"));
        IOException broken = new IOException("socket gone");
        closer.add("plugin-server", () -> {
            throw broken;
        });
        closer.add("registrar", () -> closed.add("registrar"));

        List<Exception> failures = closer.closeAll();

        assertThat(failures).containsExactly(broken);
        assertThat(closed).containsExactly("registrar", "nvml");
        assertThat(logged.list).singleElement().satisfies(event -> {
            assertThat(event.getFormattedMessage())
                    .isEqualTo("event=stop_failed owner=node-agent resource=plugin-server");
            assertThat(event.getThrowableProxy()).isNotNull();
            assertThat(event.getThrowableProxy().getMessage()).isEqualTo("socket gone");
            assertThat(event.getThrowableProxy().getStackTraceElementProxyArray())
                    .isNotEmpty();
        });
    }

    @Test
    void aSecondCloseClosesNothingAgain() {
        Closer closer = new Closer("test");
        closer.add("ledger", () -> closed.add("ledger"));
        closer.close();
        closer.close();
        assertThat(closed).containsExactly("ledger");
    }

    @Test
    void addReturnsTheResourceSoStartAndRecordAreOneStep() throws Exception {
        Closer closer = new Closer("test");
        AutoCloseable resource = () -> closed.add("x");
        assertThat(closer.add("x", resource)).isSameAs(resource);
        closer.close();
        assertThat(closed).containsExactly("x");
    }
}
