<?php

declare(strict_types=1);

namespace Cometbox\Tests\Unit;

use Cometbox\Tests\Php74Guard;
use PHPUnit\Framework\TestCase;

/**
 * The library promises PHP 7.4, but this machine runs 8.x: every file users
 * load is tokenized and checked for PHP 8 syntax and functions.
 */
final class Php74CompatibilityTest extends TestCase
{
    /** @return iterable<string, array{string}> */
    public function files(): iterable
    {
        $root = dirname(__DIR__, 2);
        $dirs = new \RecursiveIteratorIterator(new \RecursiveDirectoryIterator($root . '/src', \FilesystemIterator::SKIP_DOTS));
        $files = [$root . '/autoload.php'];
        foreach ($dirs as $file) {
            $files[] = (string) $file;
        }
        foreach (glob($root . '/examples/*/*.php') ?: [] as $file) {
            $files[] = $file;
        }
        sort($files);
        self::assertGreaterThan(20, count($files));
        foreach ($files as $file) {
            if (substr($file, -4) === '.php') {
                yield substr($file, strlen($root) + 1) => [$file];
            }
        }
    }

    /**
     * @dataProvider files
     */
    public function testFileIsPhp74Compatible(string $file): void
    {
        $code = file_get_contents($file);
        self::assertIsString($code);
        self::assertSame([], Php74Guard::check($code), $file);
    }

    /** @return iterable<string, array{string, string}> */
    public function php8Code(): iterable
    {
        yield 'match' => ['$x = match ($a) { 1 => 2, default => 3 };', 'match expression'];
        yield 'nullsafe' => ['$a?->b();', 'nullsafe operator'];
        yield 'attribute' => ["#[Pure]\nfunction f() {}", 'attribute'];
        yield 'enum' => ['enum Suit { case Hearts; }', 'enum'];
        yield 'readonly property' => ['class A { public readonly int $x; }', 'readonly'];
        yield 'promotion' => ['class A { public function __construct(private int $x) {} }', 'promoted constructor parameter'];
        yield 'promotion without type' => ['class A { function __construct(public $x, $y) {} }', 'promoted constructor parameter'];
        yield 'named argument' => ['f(1, flags: 2);', 'named argument flags:'];
        yield 'named argument first' => ['new A(nodes: []);', 'named argument nodes:'];
        yield 'union parameter' => ['function f(int|string $x) {}', 'union type'];
        yield 'union return' => ['function f(): int|false {}', 'union type'];
        yield 'union property' => ['class A { private int|float $x; }', 'union type'];
        yield 'mixed parameter' => ['function f(mixed $x) {}', 'PHP 8 type mixed'];
        yield 'mixed property' => ['class A { private mixed $x; }', 'PHP 8 type mixed'];
        yield 'static return' => ['class A { function f(): static {} }', 'PHP 8 type static'];
        yield 'never return' => ['function f(): never {}', 'PHP 8 type never'];
        yield 'trailing comma in parameters' => ["function f(\$a,\n \$b,\n) {}", 'trailing comma in a parameter list'];
        yield 'trailing comma in use' => ['$f = function () use ($a, $b,) {};', 'trailing comma in a use list'];
        yield 'catch without variable' => ['try {} catch (Exception) {}', 'catch without a variable'];
        yield 'object ::class' => ['$c = $o::class;', '$object::class'];
        yield 'first-class callable' => ['$f = strlen(...);', 'first-class callable'];
        yield 'str_contains' => ['if (str_contains($a, "b")) {}', 'PHP 8 function str_contains()'];
        yield 'fully qualified str_starts_with' => ['\str_starts_with($a, "b");', 'PHP 8 function str_starts_with()'];
        yield 'str_ends_with' => ['str_ends_with($a, "b");', 'str_ends_with()'];
        yield 'array_is_list' => ['array_is_list([]);', 'array_is_list()'];
        yield 'get_debug_type' => ['echo get_debug_type(1);', 'get_debug_type()'];
        yield 'ValueError' => ['try {} catch (\ValueError $e) {}', 'PHP 8 class \ValueError'];
        yield 'octal' => ['$a = 0o17;', 'explicit octal 0o'];
    }

    /**
     * The guard itself: each PHP 8 construct is caught.
     *
     * @dataProvider php8Code
     */
    public function testTheGuardCatches(string $code, string $problem): void
    {
        $problems = Php74Guard::check("<?php\n" . $code);

        self::assertNotSame([], $problems, 'not caught');
        self::assertStringContainsString($problem, implode("\n", $problems));
    }

    public function testTheGuardAcceptsPhp74Code(): void
    {
        $code = <<<'PHP'
            <?php
            declare(strict_types=1);
            namespace A\B;
            use C\D;
            final class E extends \RuntimeException implements D
            {
                private const F = JSON_A | JSON_B;
                private ?int $g = null;
                private static array $h = [];
                protected \A\B $i;
                public function __construct(int $flags = JSON_A | JSON_B, ?string $s = null, string ...$rest)
                {
                    $this->match();
                    self::str_contains();
                    $x = $a ? B : C;
                    $y = $a ?: C;
                    $z ??= fn (int $v): int => $v * 2;
                    switch ($x) {
                        case SOME_CONSTANT:
                        default:
                            break;
                    }
                    f($a, $b, );
                    $list = [1, 2, ];
                    try {
                    } catch (\InvalidArgumentException | \LogicException $e) {
                    }
                    $o = new class () {};
                    $c = static::class . self::class . E::class;
                }
                public function match(): ?self { return null; }
                public static function str_contains(): void {}
                public function f(): iterable { yield 1; }
            }
            PHP;

        self::assertSame([], Php74Guard::check($code));
    }
}
