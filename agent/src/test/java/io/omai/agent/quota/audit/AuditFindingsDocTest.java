package io.omai.agent.quota.audit;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** docs/operations.md's troubleshooting has one row per audit finding the agent logs as {@code reason=}. */
class AuditFindingsDocTest {
    private static final Path OPERATIONS = Path.of("..", "docs", "operations.md");
    private static final Pattern ROW = Pattern.compile("(?m)^\\| `([a-z_]+)` \\(");

    @Test
    void everyFindingHasATroubleshootingRowAndNoRowIsExtra() throws IOException {
        String doc = Files.readString(OPERATIONS);
        int begin = doc.indexOf("<!-- audit-findings -->");
        int end = doc.indexOf("<!-- /audit-findings -->");
        assertThat(begin).as("audit-findings markers in %s", OPERATIONS).isNotNegative();
        assertThat(end).isGreaterThan(begin);
        Matcher row = ROW.matcher(doc.substring(begin, end));
        List<String> documented = new ArrayList<>();
        while (row.find()) {
            documented.add(row.group(1));
        }
        List<String> logged = Arrays.stream(AuditFinding.Reason.values())
                .map(reason -> reason.name().toLowerCase(Locale.ROOT))
                .toList();
        assertThat(documented)
                .as("findings with a troubleshooting row in docs/operations.md (the log's reason=)")
                .containsExactlyInAnyOrderElementsOf(logged);
    }
}
