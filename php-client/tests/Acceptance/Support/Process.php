<?php

declare(strict_types=1);

namespace Cometbox\Tests\Acceptance\Support;

/**
 * A child process whose stdout and stderr go to a log file, so that it can
 * never block on a full pipe, and whose log can be waited on line by line.
 * Stopped with SIGTERM (then SIGKILL if it lingers) by stop() or, at the
 * latest, when the test run exits.
 */
final class Process
{
    /** @var resource */
    private $handle;

    private string $name;

    private string $log;

    private int $pid;

    /** The exit code, once seen: proc_get_status() reports it only once. */
    private ?int $exitCode = null;

    /** @var array<int, Process> every process still running, by pid */
    private static array $running = [];

    /**
     * @param string[]              $command the program and its arguments (no shell)
     * @param array<string, string> $env     the whole environment of the child
     */
    public function __construct(string $name, array $command, array $env, ?string $cwd = null)
    {
        $this->name = $name;
        $this->log = Tools::tempDir() . '/' . preg_replace('/[^A-Za-z0-9_.-]/', '_', $name) . '-' . bin2hex(random_bytes(3)) . '.log';
        $handle = proc_open(
            $command,
            [0 => ['file', '/dev/null', 'r'], 1 => ['file', $this->log, 'a'], 2 => ['file', $this->log, 'a']],
            $pipes,
            $cwd,
            $env
        );
        if (!is_resource($handle)) {
            throw new \RuntimeException(sprintf('%s: cannot start %s', $name, implode(' ', $command)));
        }
        $this->handle = $handle;
        $this->pid = (int) proc_get_status($handle)['pid'];
        self::$running[$this->pid] = $this;
        if (count(self::$running) === 1) {
            register_shutdown_function([self::class, 'stopAll']);
        }
    }

    public function name(): string
    {
        return $this->name;
    }

    public function pid(): int
    {
        return $this->pid;
    }

    public function isRunning(): bool
    {
        if ($this->exitCode !== null) {
            return false;
        }
        $status = proc_get_status($this->handle);
        if ($status['running']) {
            return true;
        }
        $this->exitCode = $status['exitcode'];

        return false;
    }

    /** Everything the process wrote so far. */
    public function output(): string
    {
        return (string) @file_get_contents($this->log);
    }

    /**
     * Reads the log until a line matches $pattern, and returns the match.
     *
     * @return string[] the preg_match() groups
     *
     * @throws \RuntimeException when the process exits or $timeout passes first
     */
    public function waitForLine(string $pattern, float $timeout = 15.0): array
    {
        $deadline = microtime(true) + $timeout;
        $offset = 0;
        $partial = '';
        while (true) {
            $chunk = (string) @file_get_contents($this->log, false, null, $offset);
            $offset += strlen($chunk);
            $lines = explode("\n", $partial . $chunk);
            $partial = (string) array_pop($lines);
            foreach ($lines as $line) {
                if (preg_match($pattern, $line, $m) === 1) {
                    return $m;
                }
            }
            if (!$this->isRunning()) {
                throw new \RuntimeException(sprintf("%s exited before logging %s:\n%s", $this->name, $pattern, $this->output()));
            }
            if (microtime(true) > $deadline) {
                throw new \RuntimeException(sprintf("%s did not log %s within %ss:\n%s", $this->name, $pattern, $timeout, $this->output()));
            }
            usleep(10000);
        }
    }

    /**
     * Stops the process: SIGTERM, then SIGKILL after $grace seconds.
     *
     * @return int its exit code (-1 when unknown)
     */
    public function stop(float $grace = 10.0): int
    {
        if (!isset(self::$running[$this->pid])) {
            return -1;
        }
        unset(self::$running[$this->pid]);
        if ($this->isRunning()) {
            proc_terminate($this->handle, 15);
            $deadline = microtime(true) + $grace;
            while ($this->isRunning() && microtime(true) < $deadline) {
                usleep(10000);
            }
            if ($this->isRunning()) {
                proc_terminate($this->handle, 9);
                while ($this->isRunning()) {
                    usleep(10000);
                }
            }
        }
        proc_close($this->handle);

        return $this->exitCode ?? -1;
    }

    /** Kills the process at once (SIGKILL), as a crash would, and waits for it. */
    public function kill(): void
    {
        if (!isset(self::$running[$this->pid])) {
            return;
        }
        unset(self::$running[$this->pid]);
        proc_terminate($this->handle, 9);
        while ($this->isRunning()) {
            usleep(10000);
        }
        proc_close($this->handle);
    }

    /** Stops every process still running: the safety net at exit. */
    public static function stopAll(): void
    {
        foreach (self::$running as $process) {
            $process->stop(2.0);
        }
    }
}
