package io.omai.placement;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.lang.classfile.ClassFile;
import java.lang.classfile.ClassModel;
import java.lang.classfile.constantpool.ClassEntry;
import java.lang.classfile.constantpool.PoolEntry;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The placement model stays a pure library that a scheduler extender can embed: its compiled classes refer to
 * nothing but the JDK's java.* packages and themselves, and to no foreign-memory (FFM) API. The pom's enforcer
 * rule keeps dependencies out; this keeps out what the JDK itself offers (FFM, JNI-style loading).
 */
class PlacementIsPureTest {
    private static final List<String> FORBIDDEN_JDK = List.of(
            "java/lang/foreign/",
            "java/net/",
            "java/nio/channels/",
            "java/lang/System$Logger",
            "java/util/concurrent/");

    @Test
    void compiledClassesReferOnlyToTheJdkAndThemselves() throws IOException, URISyntaxException {
        Path classes = Path.of(MilliGpu.class
                .getProtectionDomain()
                .getCodeSource()
                .getLocation()
                .toURI());
        Set<String> outside = new TreeSet<>();
        int classCount = 0;
        try (Stream<Path> files = Files.walk(classes)) {
            for (Path file : files.filter(f -> f.toString().endsWith(".class")).toList()) {
                classCount++;
                ClassModel model = ClassFile.of().parse(file);
                for (PoolEntry entry : model.constantPool()) {
                    if (entry instanceof ClassEntry type) {
                        String name = type.asInternalName()
                                .replaceFirst("^\\[+L?", "")
                                .replaceFirst(";$", "");
                        boolean own = name.startsWith("io/omai/placement/");
                        boolean jdk = name.startsWith("java/")
                                && FORBIDDEN_JDK.stream().noneMatch(name::startsWith);
                        if (!own && !jdk && name.contains("/")) {
                            outside.add(model.thisClass().asInternalName() + " -> " + name);
                        }
                    }
                }
            }
        }
        assertThat(classCount).as("classes found under %s", classes).isGreaterThanOrEqualTo(10);
        assertThat(outside)
                .as("references outside java.* (less FFM, networking, concurrency) and io.omai.placement")
                .isEmpty();
    }
}
