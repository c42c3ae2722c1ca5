package io.omai.agent;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.Test;

/**
 * The agent's production code uses no test code: not the fake sysfs that ships inside ib-vf-manager
 * ({@code io.omai.ibvf.testing}), not the simulator or the test harness (which depend on the agent), not a test
 * library. The enforcer rule in agent/pom.xml keeps such artifacts out of the runtime tree; this keeps the one
 * fake that is in it (as part of ib-vf-manager, docs/architecture.md "Modules") unused.
 */
class ProductionCodeTest {

    @Test
    void noProductionClassUsesAFakeASimulatorOrATestLibrary() {
        JavaClasses agent = new ClassFileImporter()
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("io.omai.agent");
        noClasses()
                .should()
                .dependOnClassesThat()
                .resideInAnyPackage(
                        "io.omai.ibvf.testing..",
                        "io.omai.simulator..",
                        "io.omai.harness..",
                        "org.junit..",
                        "org.assertj..",
                        "org.awaitility..")
                .check(agent);
    }
}
