package io.omai.agent.logging;

import ch.qos.logback.classic.pattern.ClassicConverter;
import ch.qos.logback.classic.spi.ILoggingEvent;
import org.slf4j.helpers.MessageFormatter;

/**
 * {@code %oneLineMsg} in logback.xml: the message with each {@code {}} argument escaped as a value
 * ({@link LogText#value}), then the whole text's control characters escaped ({@link LogText#controls}) for text
 * that was concatenated into the message rather than passed as an argument. Every event stays one line, so a
 * device ID or pod name with a newline in it cannot forge a log line — at every call site, without each one
 * remembering to escape.
 */
public final class OneLineMessageConverter extends ClassicConverter {
    @Override
    public String convert(ILoggingEvent event) {
        Object[] arguments = event.getArgumentArray();
        if (arguments == null || arguments.length == 0 || event.getMessage() == null) {
            return LogText.controls(event.getFormattedMessage());
        }
        Object[] escaped = new Object[arguments.length];
        for (int i = 0; i < arguments.length; i++) {
            escaped[i] = escape(arguments[i]);
        }
        return LogText.controls(
                MessageFormatter.arrayFormat(event.getMessage(), escaped).getMessage());
    }

    private static Object escape(Object argument) {
        if (argument == null || argument.getClass().isArray()) {
            return argument; // slf4j formats arrays element by element; the line-level pass still covers them
        }
        String text;
        try {
            text = String.valueOf(argument);
        } catch (RuntimeException e) {
            text = "[toString() of " + argument.getClass().getName() + " failed: " + e + "]";
        }
        return LogText.value(text);
    }
}
