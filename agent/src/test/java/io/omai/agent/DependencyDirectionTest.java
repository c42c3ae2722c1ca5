package io.omai.agent;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static org.assertj.core.api.Assertions.assertThat;

import com.tngtech.archunit.core.domain.Dependency;
import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Which way the agent's dependencies point, checked on the compiled classes for <em>every</em> package: each
 * package has a row naming the packages it may use, a package without a row fails, and the table in
 * docs/architecture.md must be this very table. Names are relative to {@code io.omai.agent} ({@code ""} is the
 * root, {@code Main}); {@code ibvf} stands for the ib-vf-manager library ({@code io.omai.ibvf..}) and
 * {@code placement} for the placement model ({@code io.omai.placement..}, its own JDK-only module), both of which
 * know nothing of the agent.
 */
class DependencyDirectionTest {
    private static final String AGENT = "io.omai.agent";
    private static final String IBVF = "io.omai.ibvf";
    private static final String PLACEMENT = "io.omai.placement";
    private static final Path ARCHITECTURE = Path.of("..", "docs", "architecture.md");

    /** Top to bottom: entry point, composition root, adapters, core, bindings, leaves. */
    static final Map<String, Set<String>> MAY_DEPEND_ON = table(
            "", "cli",
            "cli", "node metrics config lifecycle quota.shm gpu.nvml ibvf",
            "metrics",
                    "node config lifecycle ledger gpu gpu.nvml quota.audit quota.compute quota.shm ibvf "
                            + "deviceplugin.v1beta1 schedapi.v1",
            "node",
                    "deviceplugin dra schedapi kube tenancy ledger quota quota.audit quota.compute quota.shm gpu gpu.nvml "
                            + "config lifecycle ibvf placement",
            "deviceplugin",
                    "tenancy ledger quota.shm gpu config lifecycle ibvf placement deviceplugin.v1beta1 "
                            + "deviceplugin.podresources.v1",
            "schedapi", "schedapi.expr schedapi.v1 tenancy ledger gpu config lifecycle placement",
            "schedapi.expr", "schedapi.v1",
            "dra",
                    "deviceplugin deviceplugin.v1beta1 tenancy ledger gpu config lifecycle placement dra.v1 "
                            + "dra.v1beta1 dra.registration.v1",
            "kube", "tenancy lifecycle",
            "tenancy", "ledger quota.audit quota.compute quota.shm gpu config lifecycle placement",
            "ledger", "quota.shm gpu config lifecycle placement",
            "quota", "quota.shm lifecycle",
            "quota.compute", "quota.shm gpu.nvml lifecycle",
            "quota.audit", "",
            "quota.shm", "",
            "gpu", "gpu.nvml lifecycle",
            "gpu.nvml", "",
            "config", "ibvf",
            "lifecycle", "",
            "logging", "",
            "placement", "",
            "deviceplugin.v1beta1", "",
            "deviceplugin.podresources.v1", "",
            "schedapi.v1", "",
            "dra.v1", "",
            "dra.v1beta1", "",
            "dra.registration.v1", "");

    private static JavaClasses agent;

    @BeforeAll
    static void importAgent() {
        agent = new ClassFileImporter()
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages(AGENT);
    }

    @Test
    void everyPackageHasARow() {
        Set<String> packages = new TreeSet<>();
        for (JavaClass javaClass : agent) {
            packages.add(relative(javaClass.getPackageName()));
        }
        assertThat(MAY_DEPEND_ON.keySet())
                .as("packages of io.omai.agent without a row in MAY_DEPEND_ON (and docs/architecture.md)")
                .containsAll(packages);
    }

    @Test
    void everyDependencyIsOneItsPackageMayHave() {
        List<String> violations = new ArrayList<>();
        for (JavaClass javaClass : agent) {
            String from = relative(javaClass.getPackageName());
            Set<String> allowed = MAY_DEPEND_ON.getOrDefault(from, Set.of());
            for (Dependency dependency : javaClass.getDirectDependenciesFromSelf()) {
                String to = ownPackage(
                        dependency.getTargetClass().getBaseComponentType().getPackageName());
                if (to != null && !to.equals(from) && !allowed.contains(to)) {
                    violations.add(label(from) + " -> " + label(to) + ": " + dependency.getDescription());
                }
            }
        }
        assertThat(violations).as("dependencies the table does not allow").isEmpty();
    }

    @Test
    void theAllowedDependenciesPointOneWay() {
        // a cycle in the table would make "above" and "below" meaningless
        Map<String, Integer> state = new LinkedHashMap<>();
        for (String pkg : MAY_DEPEND_ON.keySet()) {
            assertThat(cycleFrom(pkg, state, new ArrayList<>()))
                    .as("cycle in MAY_DEPEND_ON")
                    .isEmpty();
        }
    }

    @Test
    void theArchitecturePageShowsTheTableThisTestEnforces() throws IOException {
        String page = Files.readString(ARCHITECTURE);
        Matcher section = Pattern.compile("<!-- dependency-table -->(.*?)<!-- /dependency-table -->", Pattern.DOTALL)
                .matcher(page);
        assertThat(section.find())
                .as("docs/architecture.md has a dependency-table section")
                .isTrue();
        Map<String, Set<String>> documented = new TreeMap<>();
        Pattern row = Pattern.compile("^\\| `([^`]+)` \\|[^|]*\\| (.*) \\|$");
        for (String line : section.group(1).lines().toList()) {
            Matcher m = row.matcher(line.strip());
            if (m.matches()) {
                Set<String> targets = new TreeSet<>();
                Matcher name = Pattern.compile("`([^`]+)`").matcher(m.group(2));
                while (name.find()) {
                    targets.add(fromLabel(name.group(1)));
                }
                documented.put(fromLabel(m.group(1)), targets);
            }
        }
        Map<String, Set<String>> enforced = new TreeMap<>();
        MAY_DEPEND_ON.forEach((pkg, targets) -> enforced.put(pkg, new TreeSet<>(targets)));
        assertThat(documented).isEqualTo(enforced);
    }

    @Test
    void placementRulesAreDefinedOnceInThePlacementModel() {
        // no second planner, tie-break or memory rule in the agent: the old ones are gone and must stay gone
        noClasses()
                .that()
                .resideInAPackage("io.omai.agent..")
                .should()
                .haveSimpleName("MilliGpu")
                .orShould()
                .haveSimpleName("AntiAffinityPolicy")
                .orShould()
                .haveSimpleName("PlacementRules")
                .orShould()
                .haveSimpleName("Planner")
                .check(agent);
    }

    @Test
    void thePlacementModelKnowsNothingOfTheAgentGrpcKubernetesOrFfm() {
        JavaClasses placement = new ClassFileImporter().importPackages(PLACEMENT);
        noClasses()
                .that()
                .resideInAPackage("io.omai.placement..")
                .should()
                .dependOnClassesThat()
                .resideInAnyPackage(
                        "io.omai.agent..", "io.grpc..", "com.google.protobuf..", "io.fabric8..", "java.lang.foreign..")
                .check(placement);
    }

    @Test
    void theLedgerKnowsNoGrpcAndNoProtobuf() {
        noClasses()
                .that()
                .resideInAPackage("io.omai.agent.ledger..")
                .should()
                .dependOnClassesThat()
                .resideInAnyPackage("io.grpc..", "com.google.protobuf..")
                .check(agent);
    }

    @Test
    void gpuBindingsKnowNoGrpc() {
        noClasses()
                .that()
                .resideInAPackage("io.omai.agent.gpu..")
                .should()
                .dependOnClassesThat()
                .resideInAnyPackage("io.grpc..")
                .check(agent);
    }

    @Test
    void onlyTheNvmlBindingPackageLinksNativeCode() {
        noClasses()
                .that()
                .resideOutsideOfPackages("io.omai.agent.gpu.nvml..", "io.omai.agent.quota..")
                .should()
                .callMethod(java.lang.foreign.Linker.class, "nativeLinker")
                .check(agent);
    }

    private List<String> cycleFrom(String pkg, Map<String, Integer> state, List<String> path) {
        Integer seen = state.get(pkg);
        if (seen != null) {
            return seen == 1 ? List.of(String.join(" -> ", path) + " -> " + pkg) : List.of();
        }
        state.put(pkg, 1);
        path.add(pkg);
        for (String next : MAY_DEPEND_ON.getOrDefault(pkg, Set.of())) {
            List<String> cycle = cycleFrom(next, state, path);
            if (!cycle.isEmpty()) {
                return cycle;
            }
        }
        path.removeLast();
        state.put(pkg, 2);
        return List.of();
    }

    /**
     * {@code io.omai.agent.x.y} → {@code x.y}; {@code io.omai.ibvf..} → {@code ibvf}; {@code io.omai.placement..}
     * → {@code placement}; anything else → null.
     */
    private static String ownPackage(String name) {
        if (name.equals(IBVF) || name.startsWith(IBVF + ".")) {
            return "ibvf";
        }
        if (name.equals(PLACEMENT) || name.startsWith(PLACEMENT + ".")) {
            return "placement";
        }
        return name.equals(AGENT) || name.startsWith(AGENT + ".") ? relative(name) : null;
    }

    private static String relative(String name) {
        return name.equals(AGENT) ? "" : name.substring(AGENT.length() + 1);
    }

    private static String label(String pkg) {
        return pkg.isEmpty() ? "(root)" : pkg;
    }

    private static String fromLabel(String label) {
        return label.equals("(root)") ? "" : label;
    }

    private static Map<String, Set<String>> table(String... pairs) {
        Map<String, Set<String>> rows = new LinkedHashMap<>();
        for (int i = 0; i < pairs.length; i += 2) {
            Set<String> targets = new HashSet<>();
            for (String target : pairs[i + 1].split(" ", -1)) {
                if (!target.isEmpty()) {
                    targets.add(target);
                }
            }
            rows.put(pairs[i], Set.copyOf(targets));
        }
        return rows;
    }
}
