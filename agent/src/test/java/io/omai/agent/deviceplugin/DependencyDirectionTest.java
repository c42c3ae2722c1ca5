package io.omai.agent.deviceplugin;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The milli-GPU plugin's layering, checked on the compiled classes: the kubelet adapter ({@code deviceplugin})
 * depends on the ledger, the ledger on the GPU and file bindings, never the other way; the placement model
 * ({@code io.omai.placement}) sits below the ledger and tenancy and depends on nothing (docs/architecture.md).
 */
class DependencyDirectionTest {
    private static JavaClasses agent;

    @BeforeAll
    static void importAgent() {
        agent = new ClassFileImporter().withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("io.omai.agent");
    }

    @Test
    void theLedgerKnowsNoAdapterNoGrpcAndNoProtobuf() {
        noClasses().that().resideInAPackage("io.omai.agent.ledger..")
                .should().dependOnClassesThat().resideInAnyPackage("io.omai.agent.deviceplugin..",
                        "io.omai.agent.cli..", "io.omai.agent.schedapi..", "io.grpc..", "com.google.protobuf..")
                .check(agent);
    }

    @Test
    void gpuBindingsKnowNeitherTheLedgerNorAnyAdapter() {
        noClasses().that().resideInAPackage("io.omai.agent.gpu..")
                .should().dependOnClassesThat().resideInAnyPackage("io.omai.agent.ledger..",
                        "io.omai.agent.deviceplugin..", "io.omai.agent.cli..", "io.grpc..")
                .check(agent);
    }

    @Test
    void onlyTheNvmlBindingPackageLinksNativeCode() {
        noClasses().that().resideOutsideOfPackages("io.omai.agent.gpu.nvml..", "io.omai.agent.quota..")
                .should().callMethod(java.lang.foreign.Linker.class, "nativeLinker")
                .check(agent);
    }

    @Test
    void configurationIsALeaf() {
        noClasses().that().resideInAPackage("io.omai.agent.config..")
                .should().dependOnClassesThat().resideInAnyPackage("io.omai.agent.ledger..", "io.omai.agent.gpu..",
                        "io.omai.agent.deviceplugin..", "io.omai.agent.cli..", "io.omai.agent.metrics..")
                .check(agent);
    }

    @Test
    void onlyTheCoreAndItsAdaptersUseThePlacementModel() {
        // the model sits below the ledger and tenancy (docs/architecture.md "Placement model"); bindings and
        // configuration never need it
        noClasses().that().resideInAnyPackage("io.omai.agent.gpu..", "io.omai.agent.quota..",
                        "io.omai.agent.config..", "io.omai.agent.lifecycle..")
                .should().dependOnClassesThat().resideInAPackage("io.omai.placement..")
                .check(agent);
    }

    @Test
    void placementRulesAreDefinedOnceInThePlacementModel() {
        // no second planner, tie-break or memory rule in the agent: the old ones are gone and must stay gone
        noClasses().that().resideInAPackage("io.omai.agent..")
                .should().haveSimpleName("MilliGpu").orShould().haveSimpleName("AntiAffinityPolicy")
                .orShould().haveSimpleName("PlacementRules").orShould().haveSimpleName("Planner")
                .check(agent);
    }

    @Test
    void thePlacementModelKnowsNothingOfTheAgentGrpcKubernetesOrFfm() {
        JavaClasses placement = new ClassFileImporter().importPackages("io.omai.placement");
        noClasses().that().resideInAPackage("io.omai.placement..")
                .should().dependOnClassesThat().resideInAnyPackage("io.omai.agent..", "io.grpc..",
                        "com.google.protobuf..", "io.fabric8..", "java.lang.foreign..")
                .check(placement);
    }

    @Test
    void loopSupervisionIsALeaf() {
        // every layer runs its loops through it, so it may depend on no other part of the agent
        noClasses().that().resideInAPackage("io.omai.agent.lifecycle..")
                .should().dependOnClassesThat().resideInAnyPackage("io.omai.agent.config..", "io.omai.agent.ledger..",
                        "io.omai.agent.gpu..", "io.omai.agent.quota..", "io.omai.agent.deviceplugin..",
                        "io.omai.agent.cli..", "io.omai.agent.metrics..", "io.omai.agent.tenancy..",
                        "io.omai.agent.schedapi..", "io.omai.agent.kube..")
                .check(agent);
    }
}
