package io.omai.agent.logging;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.spi.Configurator.ExecutionStatus;
import ch.qos.logback.classic.util.LogbackMDCAdapter;
import java.util.ServiceLoader;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class AgentLogConfiguratorTest {
    private final LoggerContext context = new LoggerContext();

    @AfterEach
    void restore() {
        System.clearProperty("logback.configurationFile");
        System.clearProperty(AgentLogConfigurator.LEVEL_PROPERTY);
        context.stop();
    }

    private ExecutionStatus configure() {
        context.setMDCAdapter(new LogbackMDCAdapter());
        AgentLogConfigurator configurator = new AgentLogConfigurator();
        configurator.setContext(context);
        return configurator.configure(context);
    }

    @Test
    void logbackFindsItThroughServiceLoaderAsTheAgentsJvmWould() {
        assertThat(ServiceLoader.load(ch.qos.logback.classic.spi.Configurator.class).stream()
                        .map(ServiceLoader.Provider::type))
                .contains(AgentLogConfigurator.class);
    }

    @Test
    void anOperatorsConfigurationFileWinsAndNothingIsSetUpBesideIt() {
        System.setProperty("logback.configurationFile", "/etc/omai/logback.xml");
        assertThat(configure()).isEqualTo(ExecutionStatus.INVOKE_NEXT_IF_ANY);
        assertThat(context.getLogger(Logger.ROOT_LOGGER_NAME).iteratorForAppenders())
                .isExhausted();
    }

    @Test
    void theRootLevelComesFromOmaiLogLevelAndGrpcStaysQuiet() {
        System.setProperty(AgentLogConfigurator.LEVEL_PROPERTY, "debug");
        assertThat(configure()).isEqualTo(ExecutionStatus.DO_NOT_INVOKE_NEXT_IF_ANY);
        Logger root = context.getLogger(Logger.ROOT_LOGGER_NAME);
        assertThat(root.getLevel()).isEqualTo(Level.DEBUG);
        assertThat(root.getAppender("STDERR")).isNotNull();
        assertThat(context.getLogger("io.grpc.netty.shaded.io.netty.bootstrap").getLevel())
                .isEqualTo(Level.ERROR);
    }

    @Test
    void anUnknownLevelFallsBackToInfo() {
        System.setProperty(AgentLogConfigurator.LEVEL_PROPERTY, "chatty");
        configure();
        assertThat(context.getLogger(Logger.ROOT_LOGGER_NAME).getLevel()).isEqualTo(Level.INFO);
    }
}
