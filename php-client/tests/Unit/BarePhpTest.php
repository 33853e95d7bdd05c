<?php

declare(strict_types=1);

namespace Cometbox\Tests\Unit;

use Cometbox\Format\XmlFormat;
use Cometbox\Message;
use Cometbox\Transport\SocketTransport;
use Cometbox\Transport\StreamTransport;
use PHPUnit\Framework\TestCase;

/**
 * The library on a PHP without extensions (`php -n`: no curl, XMLWriter,
 * DOM, mbstring, iconv), loaded with the plain autoload.php: every class
 * loads, the transports fall back in order and the hand-written XML writer
 * takes over, giving the bytes XMLWriter gives.
 */
final class BarePhpTest extends TestCase
{
    public function testWithoutExtensionsStreamsAndTheHandWrittenXmlAreUsed(): void
    {
        $report = $this->report('-d', 'allow_url_fopen=1');

        self::assertSame(['curl' => false, 'xmlwriter' => false, 'mbstring' => false], $report['extensions']);
        self::assertNotEmpty($report['loaded']);
        self::assertSame([], array_keys(array_filter($report['loaded'], static function (bool $ok): bool {
            return !$ok;
        })), 'classes that did not load');
        self::assertSame(StreamTransport::class, $report['transport']);
        self::assertStringContainsString('CurlTransport needs the curl extension', $report['curlError']);
        self::assertSame('byte 0xFF at offset 2', $report['badByte']);

        $expected = (new XmlFormat(true))->encode([
            Message::text('alice', "a\r\n]]> & <b> \"é\" 😀"),
            Message::json('bob', ['x' => "\u{FFFE}"]),
        ]);
        self::assertSame($expected, $report['xml']);
    }

    public function testWithoutAllowUrlFopenSocketsAreUsed(): void
    {
        self::assertSame(SocketTransport::class, $this->report('-d', 'allow_url_fopen=0')['transport']);
    }

    /**
     * @return array<string, mixed>
     */
    private function report(string ...$ini): array
    {
        $command = array_merge([PHP_BINARY, '-n'], $ini, [__DIR__ . '/scripts/bare.php']);
        $process = proc_open($command, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
        self::assertIsResource($process);
        $out = stream_get_contents($pipes[1]);
        $err = stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        $status = proc_close($process);

        self::assertSame(0, $status, "php -n failed:\n" . $out . $err);
        self::assertSame('', $err);

        return json_decode((string) $out, true, 512, JSON_THROW_ON_ERROR);
    }
}
