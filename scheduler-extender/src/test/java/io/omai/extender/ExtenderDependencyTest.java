package io.omai.extender;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static org.assertj.core.api.Assertions.assertThat;

import com.tngtech.archunit.base.DescribedPredicate;
import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * Which way the extender's packages depend (docs/scheduler-extender.md, "Packages"), checked on the compiled main
 * classes: http on top, then bind and decide, then cache, config at the bottom; the root package alone wires them.
 * Of the agent only the scheduler API's generated messages ({@code schedapi.v1}) and its CEL evaluator
 * ({@code schedapi.expr}) may be used: never its internals.
 */
class ExtenderDependencyTest {
    private static final String ROOT = "io.omai.extender";
    static final Map<String, Set<String>> MAY_DEPEND_ON = Map.of(
            "(root)", Set.of("http", "bind", "decide", "cache", "config"),
            "http", Set.of("bind", "decide"),
            "bind", Set.of("decide", "cache", "config"),
            "decide", Set.of("cache", "config"),
            "cache", Set.of("config"),
            "config", Set.of());

    private static final JavaClasses CLASSES = new ClassFileImporter()
            .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
            .importPackages(ROOT);

    @Test
    void packagesDependOnlyDownward() {
        Map<String, Set<String>> actual = new TreeMap<>();
        for (var javaClass : CLASSES) {
            String from = packageOf(javaClass.getPackageName());
            for (var dependency : javaClass.getDirectDependenciesFromSelf()) {
                String target = dependency.getTargetClass().getPackageName();
                if (target.startsWith(ROOT)) {
                    String to = packageOf(target);
                    if (!to.equals(from)) {
                        actual.computeIfAbsent(from, k -> new TreeSet<>()).add(to);
                    }
                }
            }
        }
        assertThat(MAY_DEPEND_ON.keySet()).as("every package has a row").containsAll(actual.keySet());
        actual.forEach((from, targets) ->
                assertThat(MAY_DEPEND_ON.get(from)).as("%s may depend on", from).containsAll(targets));
    }

    @Test
    void ofTheAgentOnlyTheSchedulerApiMessagesAndItsExpressionsAreUsed() {
        noClasses()
                .that()
                .resideInAPackage(ROOT + "..")
                .should()
                .dependOnClassesThat(JavaClass.Predicates.resideInAPackage("io.omai.agent..")
                        .and(DescribedPredicate.not(JavaClass.Predicates.resideInAnyPackage(
                                "io.omai.agent.schedapi.v1..", "io.omai.agent.schedapi.expr.."))))
                .check(CLASSES);
    }

    private static String packageOf(String name) {
        return name.equals(ROOT) ? "(root)" : name.substring(ROOT.length() + 1).split("\\.", -1)[0];
    }
}
