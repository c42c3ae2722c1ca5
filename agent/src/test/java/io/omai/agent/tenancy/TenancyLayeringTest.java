package io.omai.agent.tenancy;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Tenancy's layering on the compiled classes: the Kubernetes client (fabric8) stays in the {@code kube} adapter,
 * the {@code dra} adapter (whose API, {@code resource.k8s.io}, it reads and writes through fabric8's models) and the
 * composition root, {@code node}, which creates it; the tenancy core and the ledger know neither it nor gRPC.
 */
class TenancyLayeringTest {
    private static JavaClasses agent;

    @BeforeAll
    static void importAgent() {
        agent = new ClassFileImporter()
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("io.omai.agent");
    }

    @Test
    void onlyTheKubernetesAdaptersAndTheirWiringKnowTheKubernetesClient() {
        noClasses()
                .that()
                .resideOutsideOfPackages("io.omai.agent.kube..", "io.omai.agent.dra", "io.omai.agent.node..")
                .should()
                .dependOnClassesThat()
                .resideInAnyPackage("io.fabric8..")
                .check(agent);
    }

    @Test
    void theTenancyCoreKnowsNoAdapterAndNoGrpc() {
        noClasses()
                .that()
                .resideInAPackage("io.omai.agent.tenancy..")
                .should()
                .dependOnClassesThat()
                .resideInAnyPackage(
                        "io.omai.agent.kube..",
                        "io.omai.agent.deviceplugin..",
                        "io.omai.agent.schedapi..",
                        "io.omai.agent.cli..",
                        "io.omai.agent.node..",
                        "io.grpc..",
                        "com.google.protobuf..")
                .check(agent);
    }

    @Test
    void theLedgerKnowsNothingOfTenancyOrKubernetes() {
        noClasses()
                .that()
                .resideInAPackage("io.omai.agent.ledger..")
                .should()
                .dependOnClassesThat()
                .resideInAnyPackage("io.omai.agent.tenancy..", "io.omai.agent.kube..", "io.fabric8..")
                .check(agent);
    }
}
