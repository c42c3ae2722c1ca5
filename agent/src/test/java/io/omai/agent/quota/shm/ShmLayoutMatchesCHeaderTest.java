package io.omai.agent.quota.shm;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.StructLayout;
import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The Java mirror of omai_shm.h against what the C compiler made of the header: every size, every field offset
 * and size, every constant. The probe is built by native/Makefile from the header itself, so the two can never
 * drift without this test failing.
 */
class ShmLayoutMatchesCHeaderTest {
    private static List<String[]> probe;

    @BeforeAll
    static void runProbe() throws Exception {
        Path exe = Path.of(System.getProperty("omai.native.build", "../native/build"), "bin", "omai-abi-probe");
        assertThat(exe).as("the ABI probe built by native/Makefile").isExecutable();
        Process p = new ProcessBuilder(exe.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor()).as(out).isZero();
        probe = out.lines().map(line -> line.split(" ")).toList();
        assertThat(probe).hasSizeGreaterThan(50);
    }

    private static Map<String, StructLayout> structs() {
        return ShmLayout.ALL.stream().collect(Collectors.toMap(l -> l.name().orElseThrow(), Function.identity()));
    }

    @Test
    void everyStructSizeMatches() {
        Map<String, StructLayout> structs = structs();
        List<String[]> sizes = probe.stream().filter(l -> l[0].equals("size")).toList();
        assertThat(sizes).hasSize(structs.size());
        for (String[] line : sizes) {
            assertThat(structs).as("Java layout for C struct %s", line[1]).containsKey(line[1]);
            assertThat(structs.get(line[1]).byteSize())
                    .as("sizeof(%s)", line[1])
                    .isEqualTo(Long.parseLong(line[2]));
        }
    }

    @Test
    void everyFieldOffsetAndSizeMatches() {
        Map<String, StructLayout> structs = structs();
        for (String[] line : probe.stream().filter(l -> l[0].equals("field")).toList()) {
            String[] name = line[1].split("\\.", -1);
            StructLayout struct = structs.get(name[0]);
            assertThat(struct).as("Java layout for %s", name[0]).isNotNull();
            assertThat(struct.byteOffset(PathElement.groupElement(name[1])))
                    .as("offsetof(%s)", line[1])
                    .isEqualTo(Long.parseLong(line[2]));
            assertThat(struct.select(PathElement.groupElement(name[1])).byteSize())
                    .as("sizeof(%s)", line[1])
                    .isEqualTo(Long.parseLong(line[3]));
        }
    }

    @Test
    void everyJavaFieldIsCheckedByTheProbe() {
        Set<String> probed = new HashSet<>();
        probe.stream().filter(l -> l[0].equals("field")).forEach(l -> probed.add(l[1]));
        List<String> unchecked = new ArrayList<>();
        for (StructLayout struct : ShmLayout.ALL) {
            for (MemoryLayout member : ((GroupLayout) struct).memberLayouts()) {
                String field = member.name().orElseThrow();
                String qualified = struct.name().orElseThrow() + "." + field;
                if (!field.startsWith("reserved") && !field.equals("header") && !probed.contains(qualified)) {
                    unchecked.add(qualified);
                }
            }
        }
        assertThat(unchecked)
                .as("fields the probe does not print: add them to native/tools/abi_probe.c")
                .isEmpty();
    }

    @Test
    void everyConstantMatches() throws ReflectiveOperationException {
        List<String[]> constants =
                probe.stream().filter(l -> l[0].equals("const")).toList();
        assertThat(constants).hasSizeGreaterThan(10);
        for (String[] line : constants) {
            Field field = ShmLayout.class.getField(line[1].substring("OMAI_".length()));
            long javaValue = ((Number) field.get(null)).longValue();
            assertThat(Long.toUnsignedString(javaValue)).as(line[1]).isEqualTo(line[2]);
        }
    }

    @Test
    void headerDeclaresTheVersionTheAgentSpeaks() throws IOException {
        Path header = Path.of(System.getProperty("omai.native.build", "../native/build"))
                .getParent()
                .resolve("cuda-intercept/include/omai_shm.h");
        assertThat(Files.readString(header)).contains("#define OMAI_ABI_VERSION " + ShmLayout.ABI_VERSION + "u");
    }
}
