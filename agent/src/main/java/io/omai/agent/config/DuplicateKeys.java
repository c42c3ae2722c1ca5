package io.omai.agent.config;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonStreamContext;
import com.fasterxml.jackson.core.JsonToken;
import java.io.IOException;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashMap;
import java.util.Map;

/**
 * Refuses a key written twice in one mapping. YAML parsers keep the last value and drop the first without a word,
 * so an operator who adds a key that is already further up would run with one of the two by accident.
 */
final class DuplicateKeys {
    private DuplicateKeys() {}

    /** @throws ConfigException naming the dotted key and the lines of both occurrences */
    static void refuse(String source, JsonFactory yaml, String text) throws ConfigException {
        Deque<Map<String, Integer>> lineByKey = new ArrayDeque<>(); // one per open mapping
        try (JsonParser parser = yaml.createParser(text)) {
            for (JsonToken token = parser.nextToken(); token != null; token = parser.nextToken()) {
                switch (token) {
                    case START_OBJECT -> lineByKey.push(new HashMap<>());
                    case END_OBJECT -> lineByKey.pop();
                    case FIELD_NAME -> {
                        int line = parser.currentTokenLocation().getLineNr();
                        Integer first = lineByKey.peek().putIfAbsent(parser.currentName(), line);
                        if (first != null) {
                            throw new ConfigException(
                                    source,
                                    keyPath(parser.getParsingContext()),
                                    "appears twice, "
                                            + "at lines " + first + " and " + line
                                            + "; expected each key once (YAML would "
                                            + "keep the second and silently drop the first)");
                        }
                    }
                    default -> {}
                }
            }
        } catch (IOException e) {
            // the tree was read already, so the text parses; a parser failure here is not a duplicate
            throw new ConfigException(source, "", "cannot be parsed: " + e.getMessage());
        }
    }

    /** {@code kubelet.reconcileInterval}, {@code schedulerApi.deviceLabels[1].tags}: the key as errors name it. */
    private static String keyPath(JsonStreamContext context) {
        StringBuilder path = new StringBuilder();
        for (JsonStreamContext c = context; c != null && !c.inRoot(); c = c.getParent()) {
            if (c.inObject()) {
                path.insert(0, "." + c.getCurrentName());
            } else if (c.inArray()) {
                path.insert(0, "[" + c.getCurrentIndex() + "]");
            }
        }
        return path.length() > 0 && path.charAt(0) == '.' ? path.substring(1) : path.toString();
    }
}
