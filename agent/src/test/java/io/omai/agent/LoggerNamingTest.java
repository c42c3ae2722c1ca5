package io.omai.agent;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.fields;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.Test;

/** One rule for loggers, so a grep for {@code log.} finds every event a class writes. */
class LoggerNamingTest {
    @Test
    void everyLoggerIsAPrivateStaticFinalFieldNamedLog() {
        JavaClasses agent = new ClassFileImporter()
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("io.omai.agent");
        fields().that()
                .haveRawType(org.slf4j.Logger.class)
                .should()
                .haveName("log")
                .andShould()
                .bePrivate()
                .andShould()
                .beStatic()
                .andShould()
                .beFinal()
                .check(agent);
    }
}
