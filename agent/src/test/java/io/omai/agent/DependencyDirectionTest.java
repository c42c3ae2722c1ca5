package io.omai.agent.deviceplugin;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The milli-GPU plugin's layering, checked on the compiled classes: the kubelet adapter ({@code deviceplugin})
 * depends on the ledger, the ledger on the GPU and file bindings, never the other way (docs/architecture.md).
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
