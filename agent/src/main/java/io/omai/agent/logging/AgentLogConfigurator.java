package io.omai.agent.logging;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.PatternLayout;
import ch.qos.logback.classic.spi.Configurator;
import ch.qos.logback.classic.spi.ConfiguratorRank;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.encoder.LayoutWrappingEncoder;
import ch.qos.logback.core.spi.ContextAwareBase;

/**
 * The agent's logging, set up in code (found by logback through {@code META-INF/services}): one line per event,
 * key=value, to stderr (the container log), level via {@code -Domai.log.level=debug}. {@code %oneLineMsg} escapes
 * every logged value and {@code %oneLineEx} keeps an exception on its event's line, so no value can forge or
 * split a line.
 *
 * <p>In code rather than a {@code logback.xml} because parsing XML loaded ~640 classes (the JDK's XML parser and
 * logback's Joran) and took 0.1-1.3 s of every start. An operator's own file still wins: with
 * {@code -Dlogback.configurationFile=FILE} (or a {@code logback-test.xml} on the class path) this steps aside
 * and logback reads that file as usual.
 */
@ConfiguratorRank(ConfiguratorRank.CUSTOM_HIGH_PRIORITY)
public final class AgentLogConfigurator extends ContextAwareBase implements Configurator {
    static final String PATTERN =
            "%d{yyyy-MM-dd'T'HH:mm:ss.SSSXXX,UTC} %-5level %logger{0} [%thread] %oneLineMsg%oneLineEx%n";
    /** The system property naming the root level; INFO when unset or not a level. */
    static final String LEVEL_PROPERTY = "omai.log.level";

    @Override
    public ExecutionStatus configure(LoggerContext context) {
        if (System.getProperty("logback.configurationFile") != null
                || AgentLogConfigurator.class.getClassLoader().getResource("logback-test.xml") != null) {
            return ExecutionStatus.INVOKE_NEXT_IF_ANY;
        }
        PatternLayout layout = new PatternLayout();
        layout.setContext(context);
        layout.setPattern(PATTERN);
        layout.getInstanceConverterMap().put("oneLineMsg", OneLineMessageConverter::new);
        layout.getInstanceConverterMap().put("oneLineEx", OneLineThrowableConverter::new);
        layout.start();
        LayoutWrappingEncoder<ILoggingEvent> encoder = new LayoutWrappingEncoder<>();
        encoder.setContext(context);
        encoder.setLayout(layout);
        encoder.start();
        ConsoleAppender<ILoggingEvent> stderr = new ConsoleAppender<>();
        stderr.setContext(context);
        stderr.setName("STDERR");
        stderr.setTarget("System.err");
        stderr.setEncoder(encoder);
        stderr.start();

        context.getLogger("io.grpc").setLevel(Level.WARN);
        context.getLogger("io.grpc.netty.shaded").setLevel(Level.WARN);
        // grpc-netty asks every channel for SO_KEEPALIVE; unix-domain sockets have none and Netty warns on each
        // connection, which buries real events.
        context.getLogger("io.grpc.netty.shaded.io.netty.bootstrap").setLevel(Level.ERROR);
        Logger root = context.getLogger(Logger.ROOT_LOGGER_NAME);
        root.setLevel(Level.toLevel(System.getProperty(LEVEL_PROPERTY), Level.INFO));
        root.addAppender(stderr);
        return ExecutionStatus.DO_NOT_INVOKE_NEXT_IF_ANY;
    }
}
