<?php

declare(strict_types=1);

namespace Cometbox\Tests\Acceptance\Support;

use PHPUnit\Framework\Assert;

/**
 * Finds what the acceptance tests run: redis-server, and a cometbox binary
 * (COMETBOX_BIN, or built once per run with `go build`). A missing tool
 * skips the tests with a clear message, unless COMETBOX_TEST_STRICT=1,
 * which makes it a failure.
 */
final class Tools
{
    private static ?string $tempDir = null;

    private static ?string $cometbox = null;

    /** The repository root: php-client's parent. */
    public static function repoRoot(): string
    {
        return dirname(__DIR__, 4);
    }

    public static function isStrict(): bool
    {
        return getenv('COMETBOX_TEST_STRICT') === '1';
    }

    /** Skips the test, or fails it in strict mode. */
    public static function missing(string $what): void
    {
        $message = $what . (self::isStrict() ? ' (COMETBOX_TEST_STRICT=1: failing instead of skipping)' : ' (set COMETBOX_TEST_STRICT=1 to fail instead of skipping)');
        if (self::isStrict()) {
            Assert::fail($message);
        }
        Assert::markTestSkipped($message);
    }

    public static function redisServer(): string
    {
        $path = self::which('redis-server');
        if ($path === null) {
            self::missing('redis-server is not on PATH: install it (apt-get install redis-server) to run the acceptance tests');
        }

        return (string) $path;
    }

    /**
     * The cometbox binary: $COMETBOX_BIN, or one built from this repository
     * once per test run.
     */
    public static function cometbox(): string
    {
        if (self::$cometbox !== null) {
            return self::$cometbox;
        }
        $bin = getenv('COMETBOX_BIN');
        if ($bin !== false && $bin !== '') {
            if (!is_file($bin) || !is_executable($bin)) {
                Assert::fail(sprintf('COMETBOX_BIN=%s is not an executable file', $bin));
            }

            return self::$cometbox = $bin;
        }
        $go = self::which('go');
        if ($go === null) {
            self::missing('neither COMETBOX_BIN nor go is available: set COMETBOX_BIN to a cometbox binary, or put go on PATH to build one');
        }
        $out = self::tempDir() . '/cometbox';
        $build = new Process('go-build', [(string) $go, 'build', '-o', $out, './cmd/cometbox'], getenv(), self::repoRoot());
        $deadline = microtime(true) + 300;
        while ($build->isRunning() && microtime(true) < $deadline) {
            usleep(50000);
        }
        $output = $build->output();
        $code = $build->stop(1.0);
        if ($code !== 0 || !is_file($out)) {
            Assert::fail(sprintf("go build ./cmd/cometbox failed (exit %d):\n%s", $code, $output));
        }

        return self::$cometbox = $out;
    }

    /** A directory for this run's logs and binary, removed at exit. */
    public static function tempDir(): string
    {
        if (self::$tempDir === null) {
            $dir = sys_get_temp_dir() . '/cometbox-php-tests-' . getmypid() . '-' . bin2hex(random_bytes(4));
            if (!mkdir($dir, 0700, true)) {
                throw new \RuntimeException('cannot create ' . $dir);
            }
            self::$tempDir = $dir;
            register_shutdown_function(static function () use ($dir): void {
                Process::stopAll();
                foreach (glob($dir . '/*') ?: [] as $file) {
                    @unlink($file);
                }
                @rmdir($dir);
            });
        }

        return self::$tempDir;
    }

    /** A loopback TCP port nobody listens on right now. */
    public static function freePort(): int
    {
        $server = stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr);
        if ($server === false) {
            throw new \RuntimeException('cannot find a free port: ' . $errstr);
        }
        $name = (string) stream_socket_get_name($server, false);
        fclose($server);

        return (int) substr($name, strrpos($name, ':') + 1);
    }

    /**
     * A minimal environment for a child: PATH and the named variables that
     * are set, and nothing else (no COMETBOX_* from the caller's shell).
     *
     * @param string[]              $names
     * @param array<string, string> $extra
     *
     * @return array<string, string>
     */
    public static function env(array $names = [], array $extra = []): array
    {
        $env = ['PATH' => (string) getenv('PATH')];
        foreach (array_merge(['HOME', 'TMPDIR'], $names) as $name) {
            $value = getenv($name);
            if ($value !== false) {
                $env[$name] = $value;
            }
        }

        return $extra + $env;
    }

    private static function which(string $program): ?string
    {
        foreach (explode(PATH_SEPARATOR, (string) getenv('PATH')) as $dir) {
            $path = rtrim($dir, '/') . '/' . $program;
            if ($dir !== '' && is_file($path) && is_executable($path)) {
                return $path;
            }
        }

        return null;
    }
}
