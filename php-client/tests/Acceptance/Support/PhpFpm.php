<?php

declare(strict_types=1);

namespace Cometbox\Tests\Acceptance\Support;

/**
 * A throwaway php-fpm pool (Debian's php-fpm, with its php.ini and
 * conf.d, so opcache is on as in production) on a Unix socket in the test
 * run's temporary directory: pm = static with a fixed number of workers,
 * optionally with the cometbox extension loaded.
 */
final class PhpFpm
{
    private Process $process;

    private string $socket;

    private function __construct(Process $process, string $socket)
    {
        $this->process = $process;
        $this->socket = $socket;
    }

    /**
     * The php-fpm binary of the PHP running the tests (php-fpm8.2 for PHP
     * 8.2), or null when it is not installed.
     */
    public static function binary(): ?string
    {
        $version = PHP_MAJOR_VERSION . '.' . PHP_MINOR_VERSION;
        foreach (array_merge(explode(PATH_SEPARATOR, (string) getenv('PATH')), ['/usr/sbin', '/usr/local/sbin']) as $dir) {
            foreach (['php-fpm' . $version, 'php-fpm'] as $name) {
                $path = rtrim($dir, '/') . '/' . $name;
                if ($dir !== '' && is_file($path) && is_executable($path)) {
                    return $path;
                }
            }
        }

        return null;
    }

    /**
     * @param int                   $workers   pm.max_children, all started at once
     * @param string|null           $extension the cometbox.so to load, or null for none
     * @param array<string, string> $ini       more -d settings
     */
    public static function start(string $name, int $workers, ?string $extension, array $ini = []): self
    {
        $binary = self::binary();
        if ($binary === null) {
            Tools::missing('php-fpm is not installed: apt-get install php-fpm to run the php-fpm tests');
        }
        $dir = Tools::tempDir();
        $socket = $dir . '/' . $name . '.sock';
        $log = $dir . '/' . $name . '-fpm.log';
        $config = $dir . '/' . $name . '-fpm.conf';
        $root = function_exists('posix_getuid') && posix_getuid() === 0;
        file_put_contents($config, implode("\n", array_filter([
            '[global]',
            'error_log = ' . $log,
            'daemonize = no',
            'pid = ' . $dir . '/' . $name . '-fpm.pid',
            '[' . $name . ']',
            'listen = ' . $socket,
            $root ? 'user = root' : '',
            $root ? 'group = root' : '',
            'pm = static',
            'pm.max_children = ' . $workers,
            'pm.max_requests = 0',
            'catch_workers_output = yes',
            'clear_env = yes',
            'php_admin_flag[display_errors] = on',
            'php_admin_value[error_reporting] = -1',
            'php_admin_value[max_execution_time] = 30',
        ])) . "\n");

        $command = [$binary, '-F', '-y', $config];
        if ($root) {
            $command[] = '-R';
        }
        if ($extension !== null) {
            $command[] = '-d';
            $command[] = 'extension=' . $extension;
        }
        foreach ($ini as $key => $value) {
            $command[] = '-d';
            $command[] = $key . '=' . $value;
        }
        $process = new Process($name . '-fpm', $command, Tools::env());
        $deadline = microtime(true) + 15;
        while (strpos((string) @file_get_contents($log), 'ready to handle connections') === false) {
            if (!$process->isRunning() || microtime(true) > $deadline) {
                $process->stop(1.0);
                throw new \RuntimeException(sprintf("php-fpm did not start:\n%s\n%s", $process->output(), @file_get_contents($log)));
            }
            usleep(10000);
        }

        return new self($process, $socket);
    }

    public function client(): FastCgi
    {
        return new FastCgi('unix://' . $this->socket);
    }

    public function stop(): void
    {
        $this->process->stop();
    }
}
