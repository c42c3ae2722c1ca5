package io.omai.agent.logging;

import ch.qos.logback.classic.pattern.ThrowableHandlingConverter;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.spi.IThrowableProxy;
import ch.qos.logback.classic.spi.StackTraceElementProxy;

/**
 * {@code %oneLineEx} in logback.xml: an event's exception on the event's own line, as
 * {@code exception="type: message" at=first.frame(File.java:12) cause="type: message" ...} (up to
 * {@value #MAX_CAUSES} causes), escaped as values. Being a {@link ThrowableHandlingConverter} keeps logback from
 * appending its multi-line stack trace.
 */
public final class OneLineThrowableConverter extends ThrowableHandlingConverter {
    static final int MAX_CAUSES = 3;

    @Override
    public String convert(ILoggingEvent event) {
        IThrowableProxy thrown = event.getThrowableProxy();
        if (thrown == null) {
            return "";
        }
        StringBuilder out = new StringBuilder(" exception=\"")
                .append(LogText.value(describe(thrown)))
                .append('"');
        StackTraceElementProxy[] frames = thrown.getStackTraceElementProxyArray();
        if (frames != null && frames.length > 0) {
            out.append(" at=")
                    .append(LogText.value(frames[0].getStackTraceElement().toString()));
        }
        IThrowableProxy cause = thrown.getCause();
        for (int depth = 0; cause != null && depth < MAX_CAUSES; depth++, cause = cause.getCause()) {
            out.append(" cause=\"").append(LogText.value(describe(cause))).append('"');
        }
        return out.toString();
    }

    private static String describe(IThrowableProxy thrown) {
        return thrown.getMessage() == null ? thrown.getClassName() : thrown.getClassName() + ": " + thrown.getMessage();
    }
}
